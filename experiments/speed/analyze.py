"""The step-and-round-time study's results from the communication study's benchmark runs (one
benchmark measures both): seconds per local step of a sub-network against a full-model step, next
to the compute ceiling; each round split into compute, shared-layer sync, block hand-off and the
rest of the synchronisation; images per second per worker; the evaluation's seconds. Rewrites the
README's ``results`` section and the PNG beside it.

Usage (from the repository root): python -m experiments.speed.analyze [--runs DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resist.analysis.benches import load_benches, side_by_side
from resist.analysis.plots import figure
from resist.analysis.runs import render
from resist.analysis.study import Option, Section, study_main
from resist.models.catalog import layout_of

HERE = Path(__file__).resolve().parent


def compute_ceiling(arch: str, workers: int, min_depth: int) -> float:
    """A sub-network's share of the full network's residual blocks, all counted as equally costly:
    ``(B − n + max(n/S, m)) / B`` for B blocks of which n are partitioned (33 and 22 for
    PreActResNet-101: 0.67 / 0.50 / 0.42 at S = 2 / 4 / 8 without minimum depth)."""
    layout = layout_of(arch)
    total = sum(layout.blocks_per_stage)
    partitioned = len(layout.partitioned_units(None))
    return (total - partitioned + max(partitioned / workers, min_depth)) / total


def time_table(benches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for bench in benches:
        for protocol, f in bench["protocols"].items():
            other = f["sync_seconds_per_round"] - f["train_sync_seconds_per_round"] - f["handoff_seconds_per_round"]
            rows.append(
                {
                    "model": bench["model"],
                    "S": bench["S"],
                    "batch/worker": bench["batch"],
                    "protocol": protocol
                    + (f", m = {bench['min_depth']}" if protocol == "resist" and bench["min_depth"] else ""),
                    "s/step": f"{f['step_seconds']:.3f}",
                    "images/s/worker": f"{f['images_per_second_per_worker']:.1f}",
                    "s/round": f"{f['round_seconds']:.3f}",
                    "compute": f"{f['compute_seconds_per_round']:.3f}",
                    "shared sync": f"{f['train_sync_seconds_per_round']:.3f}",
                    "hand-off": f"{f['handoff_seconds_per_round']:.3f}",
                    "other sync": f"{max(other, 0.0):.3f}",
                    "evaluation (s, once)": f"{f['eval_seconds']:.2f}",
                }
            )
    return rows


def ratio_table(benches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for bench, resist, local in side_by_side(benches):
        measured = resist["step_seconds"] / local["step_seconds"]
        ceiling = compute_ceiling(bench["model"], bench["S"], bench["min_depth"])
        rows.append(
            {
                "model": bench["model"],
                "S": bench["S"],
                "m": bench["min_depth"],
                "sub-net step / full step (measured)": f"{measured:.3f}",
                "compute ceiling (block share)": f"{ceiling:.3f}",
                "measured / ceiling": f"{measured / ceiling:.2f}",
            }
        )
    return rows


def write_plot(benches: list[dict[str, Any]], out: Path) -> Path:
    """Seconds per round split into compute, shared sync, hand-off and other sync (stacked bars)."""
    bars = [
        (f"{b['model'].removeprefix('preact_resnet')} S={b['S']}\n{protocol}", b["protocols"][protocol])
        for b in benches
        if len(b["protocols"]) > 1
        for protocol in ("local_sgd", "resist")
        if protocol in b["protocols"]
    ]
    parts = [
        ("compute", lambda f: f["compute_seconds_per_round"]),
        ("shared sync", lambda f: f["train_sync_seconds_per_round"]),
        ("hand-off", lambda f: f["handoff_seconds_per_round"]),
        (
            "other sync",
            lambda f: max(
                f["sync_seconds_per_round"] - f["train_sync_seconds_per_round"] - f["handoff_seconds_per_round"], 0.0
            ),
        ),
    ]
    path = out / "round_time_split.png"
    with figure(path, size=(7.2, 4.2)) as axis:
        bottoms = [0.0] * len(bars)
        for label, value in parts:
            heights = [value(f) for _, f in bars]
            axis.bar(range(len(bars)), heights, bottom=bottoms, label=label)
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        axis.set_xticks(range(len(bars)))
        axis.set_xticklabels([name for name, _ in bars], fontsize=7)
        axis.set_ylabel("seconds per round")
        axis.legend(fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    return path


def sections(args: argparse.Namespace) -> Iterator[Section]:
    """The README's ``results`` section and the plot, from the benchmarks under ``args.runs``."""
    benches = load_benches(args.runs)
    lines = [
        "Per round and worker over the measured rounds (seconds; `shared sync` and `hand-off` are the "
        "ledgers' seconds of those transfers, mean over workers; a DDP round is one step and its "
        "all-reduce overlaps the backward pass):",
        "",
        render(time_table(benches)),
        "",
        "A ResIST sub-network's step against a full-model (local SGD) step, measured side by side:",
        "",
        render(ratio_table(benches)),
    ]
    yield Section(lines, [write_plot(benches, args.out)])


def main(argv: list[str]) -> None:
    study_main(
        argv,
        doc=__doc__,
        options=[
            Option("--runs", HERE.parent / "comm" / "runs", "the communication study's runs"),
            Option("--out", HERE, "the folder of README.md and the plot"),
        ],
        sections=sections,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
