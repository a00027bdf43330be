"""Benchmark directories as data (pure: reads what ``python -m resist.bench`` wrote, imports no
matplotlib): each ``bench.json`` with what it ran and the host it ran on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from resist.analysis.runs import RunsError
from resist.logging.jsonl import read_jsonl
from resist.run_dir import RunDir

# Figures an analysis reads from every protocol of a bench.json (older benchmarks lack some).
REQUIRED_FIGURES = (
    "min_depth",
    "wire_bytes_per_round_per_worker",
    "compute_seconds_per_round",
    "train_sync_seconds_per_round",
    "handoff_seconds_per_round",
    "operations_per_round_per_worker",
)


def load_benches(root: Path) -> list[dict[str, Any]]:
    """Every ``<root>/<name>/bench.json`` in name order as ``{name, config, model, S, min_depth, batch,
    protocols, host_cpus, threads_per_worker, finished}`` (``min_depth``: the ResIST run's, 0 without
    one; ``finished``: the file's modification time, seconds since the epoch). A missing folder, or
    a benchmark written before its figures existed, is an error naming the fix."""
    paths = sorted(root.glob("*/bench.json")) if root.is_dir() else []
    if not paths:
        raise RunsError(f"benches: no bench.json under {root} (fix: run the study's run.sh first)")
    benches = []
    for path in paths:
        report = json.loads(path.read_text(encoding="utf-8"))
        config, protocols = report["config"], report["protocols"]
        for protocol, figures in protocols.items():
            missing = [key for key in REQUIRED_FIGURES if key not in figures]
            if missing:
                raise RunsError(
                    f"benches: {path} ({protocol}) has no {missing[0]} (fix: rerun that benchmark with this version)"
                )
        start = _start_record(RunDir(path.parent), protocols)
        benches.append(
            {
                "name": path.parent.name,
                "config": config,
                "model": config["model"]["arch"],
                "S": config["num_workers"],
                "min_depth": next(iter(protocols.values()))["min_depth"],  # the ResIST run's (0 without one)
                "batch": config["train"]["batch_size"],
                "protocols": protocols,
                "host_cpus": start.get("platform/host_cpus"),
                "threads_per_worker": start.get("platform/threads_per_worker", 1),
                "finished": path.stat().st_mtime,
            }
        )
    return benches


def _start_record(bench_dir: RunDir, protocols: dict[str, Any]) -> dict[str, Any]:
    """The start record of the benchmark's first protocol run (its platform facts), or {}."""
    for protocol in protocols:
        metrics = bench_dir.bench_protocol_run(protocol).metrics
        if metrics.is_file():
            return read_jsonl(metrics)[0]
    return {}


def side_by_side(benches: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """``(bench, ResIST's figures, local SGD's figures)`` for each benchmark that ran both."""
    return [
        (bench, bench["protocols"]["resist"], bench["protocols"]["local_sgd"])
        for bench in benches
        if "resist" in bench["protocols"] and "local_sgd" in bench["protocols"]
    ]
