"""Run directories as data for tables and plots (pure: reads ``metrics.jsonl`` and
``resolved_config.yaml``; imports no matplotlib, and torch only as :mod:`resist.comm` loads it,
whose ledger names the purposes the bytes to train sum over).

A run is summarised from its records alone: the ``start`` record (protocol, workers, round length),
every ``eval`` record (accuracy against epochs, cumulative wire bytes and wall-clock) and the
``summary``. Runs that differ only in their seed form a group, shown as mean ± standard deviation.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resist.analysis.units import megabytes
from resist.comm.ledger import TRAINING_PURPOSES
from resist.config.hydra_door import load_resolved_config
from resist.errors import UserError
from resist.logging.jsonl import read_jsonl
from resist.run_dir import RunDir

# Config keys that do not change what a run trains: who it is, where and how often it reports,
# checkpoints and launches. Runs that differ only in these (and their seed) form one group.
_NOT_SETTINGS = ("seed", "name", "resume", "dry_run", "dataset.cache_dir")
_NOT_SETTINGS_GROUPS = ("logger.", "launcher.", "checkpoint.", "hydra.")
_REPORTING = ("train.eval_every", "train.eval_unit", "train.eval_batch_size", "train.log_every_steps")
# Settings every table shows in their own columns.
_COLUMN_SETTINGS = ("protocol.name", "num_workers", "protocol.local_steps", "model.arch", "dataset.name")


def flat_settings(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The resolved config as ``{"a.b": value}``, without the keys that do not change what is trained
    (seed, name, where decoded images are kept, logging, launching, checkpoints, evaluation cadence).
    Lists become tuples."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if name in _NOT_SETTINGS or name in _REPORTING or f"{name}.".startswith(_NOT_SETTINGS_GROUPS):
            continue
        if isinstance(value, dict):
            flat.update(flat_settings(value, f"{name}."))
        else:
            flat[name] = tuple(value) if isinstance(value, list) else value
    return flat


class RunsError(UserError):
    pass


@dataclass(frozen=True)
class EvalPoint:
    epoch: float
    wire_bytes: float
    seconds: float
    accuracy: float


@dataclass(frozen=True)
class RunResult:
    """One finished run: what it was (``protocol``, workers, round length, model, dataset, seed) and
    what it measured (its evaluation curve and summary totals)."""

    path: RunDir
    protocol: str
    workers: int
    local_steps: int
    model: str
    dataset: str
    seed: int
    curve: tuple[EvalPoint, ...]
    final_accuracy: float
    training_bytes: float
    total_bytes: float
    bytes_per_worker: float
    seconds: float
    settings: tuple[tuple[str, Any], ...] = ()
    platform: str = ""
    finished: str = ""

    @property
    def group(self) -> tuple[tuple[str, Any], ...]:
        """What the run trains: its settings, its seed apart (:func:`flat_settings`)."""
        return self.settings or (
            ("dataset.name", self.dataset),
            ("model.arch", self.model),
            ("num_workers", self.workers),
            ("protocol.local_steps", self.local_steps),
            ("protocol.name", self.protocol),
        )

    @property
    def label(self) -> str:
        return f"{self.protocol} S={self.workers} l={self.local_steps}"

    @property
    def best_accuracy(self) -> float:
        return max(point.accuracy for point in self.curve)

    def first_reaching(self, accuracy: float) -> EvalPoint | None:
        """The first evaluation at or above ``accuracy`` (a fraction), or None."""
        return next((point for point in self.curve if point.accuracy >= accuracy), None)


def run_dirs(paths: Iterable[Path]) -> list[RunDir]:
    """The run directories named, a Hydra multirun directory expanding to its jobs' (in order)."""
    found: list[RunDir] = []
    for path in paths:
        if RunDir(path).holds_run():
            found.append(RunDir(path))
            continue
        jobs = sorted((p.parent for p in path.glob("*/metrics.jsonl")), key=lambda p: (len(p.name), p.name))
        if not jobs:
            raise RunsError(
                f"runs: {path} is neither a run directory (no metrics.jsonl) nor a multirun directory holding "
                "runs (fix: give the directories runs printed as 'run directory: ...')"
            )
        found += [RunDir(job) for job in jobs]
    return found


def load_run(path: RunDir) -> RunResult:
    """A finished run's result; a run without a summary record is refused (it has not finished)."""
    records = read_jsonl(path.metrics)
    start = next((r for r in records if r["event"] == "start"), None)
    summary = records[-1] if records else {}
    if start is None or summary.get("event") != "summary":
        resumable = any(path.checkpoints.glob("step-*/manifest.json"))
        fix = "run it again: it saved no checkpoint"
        if resumable:
            fix = f"resume it with python -m resist.run resume={path}"
        raise RunsError(
            f"runs: {path} has not finished (no summary record in metrics.jsonl) (fix: let it finish, or {fix})"
        )
    config = load_resolved_config(path)
    protocol = config.get("protocol", {})
    platform = ", ".join(f"{k.removeprefix('platform/')} {v}" for k, v in start.items() if k.startswith("platform/"))
    # (runs from before the summary carried its time: when metrics.jsonl was last written)
    written = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(path.metrics.stat().st_mtime))
    finished = summary.get("time/finished_utc", written)
    curve = tuple(
        EvalPoint(r["epoch"], r["comm/cum_wire_bytes"], r["time/elapsed_s"], r["test/acc1"])
        for r in records
        if r["event"] == "eval"
    )
    training = sum(summary.get(f"comm/cum_wire_bytes/{purpose.value}", 0.0) for purpose in TRAINING_PURPOSES)
    return RunResult(
        path=path,
        protocol=start["protocol"],
        workers=start["num_workers"],
        local_steps=int(protocol.get("local_steps", start["steps_per_round"])),
        model=config["model"]["arch"],
        dataset=config["dataset"]["name"],
        seed=int(config["seed"]),
        curve=curve,
        final_accuracy=summary["test/acc1"],
        training_bytes=training,
        total_bytes=summary["comm/cum_wire_bytes"],
        bytes_per_worker=summary["comm/cum_wire_bytes"] / start["num_workers"],
        seconds=summary["time/elapsed_s"],
        settings=tuple(sorted(flat_settings(config).items())),
        platform=platform,
        finished=finished,
    )


def grouped(results: Sequence[RunResult]) -> list[list[RunResult]]:
    """Results with the same settings (seeds apart: :func:`flat_settings`), in the order their groups
    first appear."""
    groups: dict[tuple, list[RunResult]] = {}
    for result in results:
        groups.setdefault(result.group, []).append(result)
    return list(groups.values())


def _stat(values: Sequence[float], render) -> str:
    if len(values) == 1:
        return render(values[0])
    return f"{render(statistics.mean(values))} ± {render(statistics.stdev(values))}"


def _percent(value: float) -> str:
    return f"{100 * value:.2f} %"


def _seconds(value: float) -> str:
    return f"{value:,.1f} s"


def varying_settings(results: Sequence[RunResult]) -> list[str]:
    """The settings (other than those with their own column) whose values differ among the runs
    that have them: what tells the groups of a comparison apart (an ablation's knob)."""
    values: dict[str, set[Any]] = {}
    for result in results:
        for key, value in result.settings:
            values.setdefault(key, set()).add(value)
    return sorted(key for key, seen in values.items() if len(seen) > 1 and key not in _COLUMN_SETTINGS)


def table(results: Sequence[RunResult], thresholds: Sequence[float]) -> list[dict[str, Any]]:
    """One row per group: what it is (with a ``settings`` column naming the values of the settings
    that vary among the groups, when any do), and its measured figures (mean ± std over its seeds)."""
    rows = []
    varying = varying_settings(results)
    for members in grouped(results):
        first = members[0]
        own = dict(first.settings)
        row: dict[str, Any] = {
            "protocol": first.protocol,
            "S": first.workers,
            "l": first.local_steps,
            "model": first.model,
            "dataset": first.dataset,
        }
        if varying:
            row["settings"] = ", ".join(f"{key}={own[key]}" for key in varying if key in own) or "-"
        row |= {
            "seeds": ",".join(str(m.seed) for m in members),
            "final acc": _stat([m.final_accuracy for m in members], _percent),
            "best acc": _stat([m.best_accuracy for m in members], _percent),
            "bytes to train": _stat([m.training_bytes for m in members], megabytes),
            "bytes in all": _stat([m.total_bytes for m in members], megabytes),
            "bytes per worker": _stat([m.bytes_per_worker for m in members], megabytes),
            "wall-clock": _stat([m.seconds for m in members], _seconds),
        }
        for threshold in thresholds:
            reached = [m.first_reaching(threshold) for m in members]
            key = f"to {100 * threshold:g} %"
            if all(point is not None for point in reached):
                points = [p for p in reached if p is not None]
                seconds = _stat([p.seconds for p in points], _seconds)
                row[key] = f"{seconds}, {_stat([p.wire_bytes for p in points], megabytes)}"
            else:
                row[key] = f"not reached by {sum(p is None for p in reached)} of {len(reached)}"
        rows.append(row)
    return rows


def render(rows: Sequence[dict[str, Any]]) -> str:
    """``rows`` as a Markdown table."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def versus(results: Sequence[RunResult], protocol: str, reference: str) -> list[dict[str, Any]]:
    """For each number of workers that both protocols ran at: ``protocol``'s mean final accuracy
    minus ``reference``'s (points), and the ratios of their mean bytes to train and mean wall-clock
    (one row per S, in increasing S)."""
    rows = []
    for workers in sorted({r.workers for r in results}):
        ours = [r for r in results if r.protocol == protocol and r.workers == workers]
        theirs = [r for r in results if r.protocol == reference and r.workers == workers]
        if not ours or not theirs:
            continue

        def mean(runs: Sequence[RunResult], field: str) -> float:
            return statistics.mean(getattr(r, field) for r in runs)

        gap = 100 * (mean(ours, "final_accuracy") - mean(theirs, "final_accuracy"))
        rows.append(
            {
                "S": workers,
                "seeds": f"{len(ours)} / {len(theirs)}",
                f"{protocol} − {reference} final acc": f"{gap:+.2f} points",
                "bytes to train ratio": f"{mean(ours, 'training_bytes') / mean(theirs, 'training_bytes'):.3f}",
                "wall-clock ratio": f"{mean(ours, 'seconds') / mean(theirs, 'seconds'):.3f}",
            }
        )
    return rows
