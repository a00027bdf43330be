"""The bandwidth what-if: from measured compute seconds, bytes and messages, project wall-clock on
networks of 1, 10, 25, 100 and 400 Gbit/s (:mod:`resist.analysis.whatif`), for the CIFAR-10 study's
runs (per epoch and to an accuracy) and the communication study's PreActResNet-101 benchmarks (per
round); check the model against this machine's loopback link. Rewrites the README's ``results``
section and the PNG beside it.

Usage (from the repository root):
    python -m experiments.whatif.analyze [--cifar10-runs DIR] [--comm-runs DIR] [--loopback FILE] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resist.analysis.benches import load_benches
from resist.analysis.plots import figure
from resist.analysis.runs import RunResult, RunsError, grouped, render
from resist.analysis.study import Option, Section, study_main, study_runs
from resist.analysis.whatif import GBIT, LinkFit, RoundCost, dedicated_compute, ring_messages, round_seconds
from resist.comm.ledger import SYNC_PURPOSES
from resist.logging.jsonl import read_jsonl

HERE = Path(__file__).resolve().parent
BANDWIDTHS_GBIT = (1, 10, 25, 100, 400)
LATENCY_S = 10e-6  # per message, a datacentre network's order of magnitude (the loopback's is fitted)
THRESHOLD = 0.5  # test accuracy for the time-to-accuracy projection


@dataclass(frozen=True)
class RunCosts:
    """One run's measured totals per worker: its rounds' mean :class:`RoundCost`, the number of
    rounds, epochs and evaluation seconds."""

    result: RunResult
    round: RoundCost
    rounds: int
    epochs: float
    eval_s: float

    def seconds(self, bandwidth_bits_per_s: float, latency_s: float = LATENCY_S) -> float:
        """The whole run's projected wall-clock: every round, plus the measured evaluations."""
        per_round = round_seconds(self.round, bandwidth_bits_per_s=bandwidth_bits_per_s, latency_s=latency_s)
        return self.rounds * per_round + self.eval_s


_RUN_KEYS = (
    *(f"comm/cum_wire_bytes/{p.value}" for p in SYNC_PURPOSES),
    *(f"comm/cum_ops/{p.value}" for p in SYNC_PURPOSES),
    "time/compute_s",
    "time/eval_s",
)


def run_costs(result: RunResult, compute_s: float | None = None) -> RunCosts:
    """``result``'s measured costs from its records, its compute on dedicated cores
    (:func:`dedicated_compute`); ``compute_s`` replaces its measured total compute seconds (DDP: a
    full-model step's compute measured without overlapped communication)."""
    records = read_jsonl(result.path.metrics)
    start, summary = records[0], records[-1]
    missing = [key for key in (*_RUN_KEYS, "platform/host_cpus") if key not in summary and key not in start]
    if missing:
        raise RunsError(f"whatif: {result.path} records no {missing[0]} (fix: rerun it with this version)")
    workers, rounds = start["num_workers"], start["num_rounds"]
    wire = sum(summary[f"comm/cum_wire_bytes/{p.value}"] for p in SYNC_PURPOSES) / workers
    all_reduces = summary["comm/cum_ops/train_sync"] / workers
    sends = summary["comm/cum_ops/handoff"] / workers / 2  # each send has its receive
    messages = ring_messages(all_reduces, workers) + sends
    compute = dedicated_compute(
        summary["time/compute_s"] if compute_s is None else compute_s,
        workers=workers,
        threads_per_worker=start["platform/threads_per_worker"],
        host_cpus=start["platform/host_cpus"],
    )
    return RunCosts(
        result=result,
        round=RoundCost(compute_s=compute / rounds, wire_bytes=wire / rounds, messages=messages / rounds),
        rounds=rounds,
        epochs=summary["epoch"],
        eval_s=summary["time/eval_s"],
    )


def study_costs(results: list[RunResult]) -> list[list[RunCosts]]:
    """Each group's runs' costs; DDP's compute is local SGD's at the same S and seed (the same
    full-model steps, whose compute clock holds no communication)."""
    local = {(r.workers, r.seed): r for r in results if r.protocol == "local_sgd"}
    groups = []
    for members in grouped(results):
        costs = []
        for result in members:
            compute = None
            if result.protocol == "ddp":
                reference = local.get((result.workers, result.seed))
                if reference is None:
                    raise RunsError(f"whatif: no local_sgd run beside the ddp run {result.path} (fix: run the study)")
                compute = read_jsonl(reference.path.metrics)[-1]["time/compute_s"]
            costs.append(run_costs(result, compute))
        groups.append(costs)
    return groups


def _mean(values: list[float]) -> float:
    return statistics.mean(values)


def epoch_table(groups: list[list[RunCosts]]) -> list[dict[str, Any]]:
    rows = []
    for costs in groups:
        first = costs[0].result
        row: dict[str, Any] = {"protocol": first.protocol, "S": first.workers, "runs": len(costs)}
        row["MB/round/worker"] = f"{_mean([c.round.wire_bytes for c in costs]) / 1e6:.2f}"
        row["compute s/round"] = f"{_mean([c.round.compute_s for c in costs]):.2f}"
        for gbit in BANDWIDTHS_GBIT:
            per_epoch = _mean([c.seconds(gbit * GBIT) / c.epochs for c in costs])
            row[f"s/epoch @ {gbit} Gbit/s"] = f"{per_epoch:.1f}"
        reached = [c.result.first_reaching(THRESHOLD) for c in costs]
        if all(point is not None for point in reached):
            fractions = [p.epoch / c.epochs for p, c in zip(reached, costs, strict=True) if p is not None]
            for gbit in (1, 100):
                seconds = _mean([f * c.seconds(gbit * GBIT) for f, c in zip(fractions, costs, strict=True)])
                row[f"to {THRESHOLD:.0%} @ {gbit} Gbit/s"] = f"{seconds:.0f} s"
        else:
            for gbit in (1, 100):
                row[f"to {THRESHOLD:.0%} @ {gbit} Gbit/s"] = "not reached"
        rows.append(row)
    return rows


def paper_model_table(benches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PreActResNet-101 benchmarks: each protocol's projected seconds per round (compute on
    dedicated cores; DDP's a local-SGD step's, its own clock holding its overlapped all-reduce) and
    the bandwidth below which its communication takes longer than its compute."""
    rows = []
    for bench in benches:
        protocols = bench["protocols"]
        if bench["model"] != "preact_resnet101" or "local_sgd" not in protocols:
            continue
        for protocol, f in protocols.items():
            operations = f["operations_per_round_per_worker"]
            if protocol == "resist":  # one shared all-reduce; the rest are hand-off sends and receives
                messages = ring_messages(1, bench["S"]) + (operations - 1) / 2
            else:  # all-reduces only (DDP: one per gradient bucket)
                messages = ring_messages(operations, bench["S"])
            measured = protocols["local_sgd"]["step_seconds"] if protocol == "ddp" else f["compute_seconds_per_round"]
            compute = dedicated_compute(
                measured,
                workers=bench["S"],
                threads_per_worker=bench["threads_per_worker"],
                host_cpus=bench["host_cpus"],
            )
            cost = RoundCost(compute_s=compute, wire_bytes=f["wire_bytes_per_round_per_worker"], messages=messages)
            m = f", m = {bench['min_depth']}" if protocol == "resist" and bench["min_depth"] else ""
            row: dict[str, Any] = {"S": bench["S"], "protocol": protocol + m, "compute s/round": f"{compute:.2f}"}
            for gbit in BANDWIDTHS_GBIT:
                seconds = round_seconds(cost, bandwidth_bits_per_s=gbit * GBIT, latency_s=LATENCY_S)
                row[f"s/round @ {gbit} Gbit/s"] = f"{seconds:.3f}"
            row["comm = compute at"] = f"{8 * cost.wire_bytes / cost.compute_s / GBIT:.2f} Gbit/s"
            rows.append(row)
    return rows


def loopback_check(loopback: dict[str, Any], benches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fitted loopback link against measured transfers: the probe's own payloads, and local SGD's
    all-reduce in each 2-worker benchmark round (the bench ran on the same machine, 2 processes)."""
    fit = LinkFit(**loopback["fit"])
    rows = []
    measured = loopback["measured"]
    for k, (wire, messages, seconds) in enumerate(measured):
        predicted = round_seconds(
            RoundCost(0.0, wire, messages), bandwidth_bits_per_s=fit.bandwidth_bits_per_s, latency_s=fit.latency_s
        )
        fitted = " (fitted)" if k in (0, len(measured) - 1) else ""
        rows.append(_check_row(f"probe all-reduce, {wire / 1e6:g} MB on the wire{fitted}", predicted, seconds))
    for bench in benches:
        local = bench["protocols"].get("local_sgd")
        if bench["S"] != loopback["workers"] or local is None:
            continue
        predicted = round_seconds(
            RoundCost(0.0, local["wire_bytes_per_round_per_worker"], ring_messages(1, bench["S"])),
            bandwidth_bits_per_s=fit.bandwidth_bits_per_s,
            latency_s=fit.latency_s,
        )
        what = f"{bench['model']} S = {bench['S']} local SGD: the round's all-reduce of the model"
        rows.append(_check_row(what, predicted, local["train_sync_seconds_per_round"]))
    return rows


def _check_row(what: str, predicted: float, measured: float) -> dict[str, Any]:
    return {
        "transfer": what,
        "model (s)": f"{predicted:.4f}",
        "measured (s)": f"{measured:.4f}",
        "model / measured": f"{predicted / measured:.2f}",
    }


def write_plot(groups: list[list[RunCosts]], out: Path) -> Path:
    """Projected seconds per epoch against bandwidth (log scale), one line per (protocol, S)."""
    grid = [10 ** (k / 10) for k in range(-10, 27)]  # 0.1 .. 400 Gbit/s
    path = out / "epoch_time_vs_bandwidth.png"
    fewest = min(c[0].result.workers for c in groups)
    with figure(path) as axis:
        for g, costs in enumerate(groups):
            first = costs[0].result
            ys = [_mean([c.seconds(gbit * GBIT) / c.epochs for c in costs]) for gbit in grid]
            style = "-" if first.workers == fewest else "--"
            axis.plot(grid, ys, color=f"C{g % 10}", linestyle=style, label=f"{first.protocol} S={first.workers}")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("bandwidth per link (Gbit/s)")
        axis.set_ylabel("projected seconds per epoch")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
    return path


def sections(args: argparse.Namespace) -> Iterator[Section]:
    """The README's ``results`` section and the plot: the CIFAR-10 runs under ``args.cifar10_runs``,
    the benchmarks under ``args.comm_runs`` and the loopback probe's ``args.loopback``."""
    if not args.loopback.is_file():
        raise RunsError(f"whatif: {args.loopback} is missing (fix: run bash experiments/whatif/run.sh)")
    loopback = json.loads(args.loopback.read_text(encoding="utf-8"))
    groups = study_costs(study_runs(args.cifar10_runs))
    benches = load_benches(args.comm_runs)
    fit = LinkFit(**loopback["fit"])
    lines = [
        f"CIFAR-10 study runs (measured compute, bytes and messages per round; {LATENCY_S * 1e6:g} µs per "
        f"message; evaluations as measured), projected wall-clock per epoch and to {THRESHOLD:.0%} test "
        "accuracy:",
        "",
        render(epoch_table(groups)),
        "",
        "PreActResNet-101 benchmarks (the communication study's; compute measured on this CPU), projected "
        "seconds per round, and the bandwidth below which a round's communication outlasts its compute:",
        "",
        render(paper_model_table(benches)),
        "",
        f"The model against this machine's loopback link (gloo, 2 processes; fitted latency "
        f"{fit.latency_s * 1e6:.0f} µs per message, bandwidth {fit.bandwidth_bits_per_s / GBIT:.2f} Gbit/s, "
        f"probe of {loopback['finished']}):",
        "",
        render(loopback_check(loopback, benches)),
    ]
    yield Section(lines, [write_plot(groups, args.out)])


def main(argv: list[str]) -> None:
    study_main(
        argv,
        doc=__doc__,
        options=[
            Option("--cifar10-runs", HERE.parent / "cifar10" / "runs"),
            Option("--comm-runs", HERE.parent / "comm" / "runs"),
            Option("--loopback", HERE / "runs" / "loopback.json"),
            Option("--out", HERE, "the folder of README.md and the plot"),
        ],
        sections=sections,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
