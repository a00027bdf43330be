"""The compression study's results. ``bytes``: from its benchmarks (``bench.sh``), each compressed
protocol's measured wire bytes per round per worker, the cost model's, and their ratio to float32
ring local SGD's next to the targets (ResIST int8 at most 0.14 / 0.12 / 0.11 at S = 2 / 4 / 8, int4
0.07; bf16 local SGD exactly 0.5). ``accuracy``: from its CIFAR-10 runs (``run.sh``), every
(protocol, compression) group over its seeds, each compressed group against its protocol's float32
runs (the goal: int8 and int4 ResIST within 0.5 point of float32 ResIST), and the plots: final
accuracy against bytes to train, and the accuracy curves. ``int4``: the int4 benchmarks and the
int4 and float32 ResIST runs of ``int4.sh``. Rewrites the README's ``bytes``, ``accuracy`` and
``int4`` sections.

Usage (from the repository root):
python -m experiments.compression.analyze [--runs DIR] [--out DIR] [--only bytes|accuracy|int4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resist.analysis.benches import load_benches
from resist.analysis.plots import figure, write_plots
from resist.analysis.runs import RunResult, grouped, render, table
from resist.analysis.study import Option, Section, provenance, study_main, study_runs

HERE = Path(__file__).resolve().parent
# (protocol, compression) -> {S: the largest ratio to float32 ring local SGD the issue accepts}
TARGETS = {
    ("resist", "int8"): {2: 0.14, 4: 0.12, 8: 0.11},
    ("resist", "int4"): {2: 0.07, 4: 0.07, 8: 0.07},
    ("local_sgd", "bf16"): {2: 0.5, 4: 0.5, 8: 0.5},
}
GOAL_POINTS = 0.5  # int8 and int4 ResIST's final accuracy within this many points of float32 ResIST's


def bytes_table(benches: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    rows = []
    for bench in benches:
        report = json.loads((root / bench["name"] / "bench.json").read_text(encoding="utf-8"))
        compress = report["config"]["protocol"]["compress"]
        reference = report["float32_ring_local_sgd_wire_bytes"]
        for protocol, f in bench["protocols"].items():
            ratio = f["wire_bytes_per_round_per_worker"] / reference
            target = TARGETS.get((protocol, compress), {}).get(bench["S"])
            exact = protocol == "local_sgd" and compress == "bf16"
            verdict = "-" if target is None else f"{'=' if exact else '≤'} {target:.2f}: "
            if target is not None:
                met = abs(ratio - target) < 1e-12 if exact else ratio <= target
                verdict += "met" if met else "**not met**"
            m = f", m = {bench['min_depth']}" if protocol == "resist" else ""
            per = " (per step)" if protocol == "ddp" else ""
            rows.append(
                {
                    "S": bench["S"],
                    "protocol": f"{protocol}{m}{per}",
                    "compress": compress,
                    "wire MB/round/worker": f"{f['wire_bytes_per_round_per_worker'] / 1e6:.3f}",
                    "cost model": f"{f['expected_wire_bytes_per_round_per_worker'] / 1e6:.3f}",
                    "float32 ring local SGD": f"{reference / 1e6:.3f}",
                    "ratio": f"{ratio:.4f}",
                    "target": verdict,
                }
            )
    return rows


def compression_of(result: RunResult) -> str:
    return str(dict(result.settings).get("protocol.compress", "none"))


def _mean(runs: list[RunResult], field: str) -> float:
    return statistics.mean(getattr(r, field) for r in runs)


def against_float32(results: list[RunResult]) -> list[dict[str, Any]]:
    """Each compressed group against the group that trains the same but in float32, over the seeds
    both ran (means over those seeds): final accuracy difference, and ratios of bytes to train and
    wall-clock; bytes also against float32 local SGD's at the same S. The int8-ResIST goal: no more
    than 0.5 point below."""

    def float32_twin(run: RunResult) -> tuple:
        """What ``run`` trains but for its compression: the key of its float32 group."""
        return tuple((k, "none" if k == "protocol.compress" else v) for k, v in run.group)

    float32_groups = {float32_twin(g[0]): g for g in grouped(results) if compression_of(g[0]) == "none"}
    local_sgd = {g[0].workers: g for g in float32_groups.values() if g[0].protocol == "local_sgd"}
    rows = []
    for runs in grouped(results):
        protocol, workers, compress = runs[0].protocol, runs[0].workers, compression_of(runs[0])
        float32 = float32_groups.get(float32_twin(runs[0]))
        if compress == "none" or float32 is None:
            continue
        seeds = {r.seed for r in runs} & {r.seed for r in float32}  # compared seed by seed
        runs, float32 = [r for r in runs if r.seed in seeds], [r for r in float32 if r.seed in seeds]
        if not seeds:
            continue
        gap = 100 * (_mean(runs, "final_accuracy") - _mean(float32, "final_accuracy"))
        goal = "-"
        if (protocol, compress) in (("resist", "int8"), ("resist", "int4")):
            goal = f"within {GOAL_POINTS} point: {'met' if gap >= -GOAL_POINTS else '**not met**'}"
        rows.append(
            {
                "protocol": protocol,
                "S": workers,
                "compress": compress,
                "seeds": ",".join(str(seed) for seed in sorted(seeds)),
                "final acc − float32's": f"{gap:+.2f} points",
                "bytes to train / float32's": f"{_mean(runs, 'training_bytes') / _mean(float32, 'training_bytes'):.4f}",
                "/ float32 local SGD's": "-"
                if workers not in local_sgd
                else f"{_mean(runs, 'training_bytes') / _mean(local_sgd[workers], 'training_bytes'):.4f}",
                "wall-clock / float32's": f"{_mean(runs, 'seconds') / _mean(float32, 'seconds'):.3f}",
                "goal": goal,
            }
        )
    return rows


def label(result: RunResult) -> str:
    return f"{result.protocol} {compression_of(result)}"


def final_accuracy_vs_bytes(results: list[RunResult], out: Path) -> Path:
    """One point per run: final accuracy against bytes to train (log scale); a group's seeds share
    a colour and marker."""
    path = out / "final_accuracy_vs_bytes.png"
    markers = "osD^v<>"
    with figure(path) as axis:
        for g, runs in enumerate(grouped(results)):
            axis.scatter(
                [r.training_bytes / 1e6 for r in runs],
                [100 * r.final_accuracy for r in runs],
                color=f"C{g % 10}",
                marker=markers[g % len(markers)],
                label=f"{label(runs[0])} S={runs[0].workers}",
            )
        axis.set_xscale("log")
        axis.set_xlabel("bytes to train, all workers (MB, log scale)")
        axis.set_ylabel("final test accuracy (%)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return path


def accuracy_section(root: Path, out: Path) -> Section:
    """The README's ``accuracy`` section and its plots, from the CIFAR-10 runs under ``root``."""
    results = study_runs(root)
    lines = [
        "Every (protocol, compression) group, mean ± std over its seeds; bytes are measured wire bytes of "
        "all workers; `to 40 %`: wall-clock and bytes when an evaluation first reached it.",
        "",
        render(table(results, (0.4,))),
        "",
        "Each compressed group against its protocol's float32 runs, over the seeds both ran (means over them):",
        "",
        render(against_float32(results)),
        "",
        f"Measured: {provenance(results)}.",
    ]
    plots = [final_accuracy_vs_bytes(results, out), *write_plots(results, out, label_of=label)]
    return Section(lines, plots, name="accuracy")


def bytes_section(root: Path) -> Section:
    """The README's ``bytes`` section, from the benchmarks under ``root``."""
    lines = [
        "Per benchmark (MB = 10^6 bytes, per round and worker over the measured rounds; ResIST's hand-off "
        "depends on the rounds' random partitions, the cost model gives its expectation):",
        "",
        render(bytes_table(load_benches(root), root)),
    ]
    return Section(lines, name="bytes")


def int4_section(root: Path) -> Section:
    """The README's ``int4`` section: the ``int4-*`` benchmarks under ``root`` (bench.sh) and the
    int4 and float32 ResIST runs under ``root/int4-accuracy`` (int4.sh)."""
    benches = [b for b in load_benches(root) if b["name"].startswith("int4-")]
    results = study_runs(root / "int4-accuracy")
    lines = [
        "Bytes on the paper's network (MB = 10^6 bytes, per round and worker over the measured rounds):",
        "",
        render(bytes_table(benches, root)),
        "",
        "Accuracy on the CIFAR-10 budget at S = 4, mean ± std over the seeds:",
        "",
        render(table(results, (0.4,))),
        "",
        "int4 against float32, over the seeds both ran (means over them):",
        "",
        render(against_float32(results)),
        "",
        f"Measured: {provenance(results)}.",
    ]
    return Section(lines, name="int4")


def sections(args: argparse.Namespace) -> Iterator[Section]:
    """The sections ``args.only`` names (all by default: ``bytes`` first), each written before the
    next is computed."""
    if args.only in (None, "bytes"):
        yield bytes_section(args.runs)
    if args.only in (None, "accuracy"):
        yield accuracy_section(args.runs / "accuracy", args.out)
    if args.only in (None, "int4"):
        yield int4_section(args.runs)


def main(argv: list[str]) -> None:
    study_main(
        argv,
        doc=__doc__,
        options=[
            Option("--runs", HERE / "runs", "the folder bench.sh and run.sh wrote into"),
            Option("--out", HERE, "the folder of README.md and the plots"),
            Option("--only", help="write one section only", choices=("bytes", "accuracy", "int4")),
        ],
        sections=sections,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
