"""The communication-and-memory study's results from its benchmark runs (``bench.json`` of each):
bytes per round per worker (wire, payload, the cost model's expectation), the paper's Table-1
convention next to the paper's figures, bytes held and peak memory per worker, and ResIST's ratios
to local SGD; a bar plot of wire bytes per round. Rewrites the README's ``results`` section and
the PNG beside it.

Usage (from the repository root): python -m experiments.comm.analyze [--runs DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resist.analysis.benches import load_benches, side_by_side
from resist.analysis.plots import figure
from resist.analysis.runs import render
from resist.analysis.study import Option, Section, study_main
from resist.analysis.units import megabytes
from resist.paper import TABLE1_GB, TABLE1_MIN_DEPTH

HERE = Path(__file__).resolve().parent


def bytes_table(benches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for bench in benches:
        for protocol, figures in bench["protocols"].items():
            expected = figures.get("expected_wire_bytes_per_round_per_worker")
            # ResIST's hand-off depends on the partitions: the cost model of the measured rounds' own
            # partitions (other protocols send the same every round: their expectation is exact)
            window = figures.get("window_wire_bytes_per_round_per_worker", expected if protocol != "resist" else None)
            m = f", m = {bench['min_depth']}" if protocol == "resist" and bench["min_depth"] else ""
            rows.append(
                {
                    "model": bench["model"],
                    "S": bench["S"],
                    "protocol": protocol + m + (" (round = 1 step)" if protocol == "ddp" else ""),
                    "wire MB/round/worker": megabytes(figures["wire_bytes_per_round_per_worker"], unit=False),
                    "cost model": megabytes(expected, unit=False) if expected is not None else "-",
                    "measured / cost model": (
                        f"{figures['wire_bytes_per_round_per_worker'] / expected:.3f}" if expected else "-"
                    ),
                    "measured / cost model of these rounds": (
                        f"{figures['wire_bytes_per_round_per_worker'] / window:.4f}" if window else "-"
                    ),
                    "std over rounds (rounds)": (
                        megabytes(figures["wire_bytes_per_local_steps_per_worker_std"], unit=False)
                        + f" ({figures['measured_stretches']})"
                        if "measured_stretches" in figures
                        else "-"
                    ),
                    "payload MB/round/worker": megabytes(figures["payload_bytes_per_round_per_worker"], unit=False),
                    "Table-1 GB/round": f"{figures['table1_bytes_per_round'] / 1e9:.3f}",
                    "held MB/worker (max)": megabytes(figures["held_bytes_per_worker"], unit=False),
                    "peak MB/worker": megabytes(figures["peak_memory_bytes_per_worker"], unit=False),
                }
            )
    return rows


def ratio_table(benches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ResIST / local SGD of the benchmarks that ran both."""
    rows = []
    for bench, resist, local in side_by_side(benches):

        def ratio(key: str, resist: dict[str, Any] = resist, local: dict[str, Any] = local) -> str:
            return f"{resist[key] / local[key]:.3f}"

        per_l = "wire_bytes_per_local_steps_per_worker"
        rows.append(
            {
                "model": bench["model"],
                "S": bench["S"],
                "m": bench["min_depth"],
                "wire bytes/round (measured)": ratio(per_l),
                "wire bytes/round (cost model)": ratio("expected_wire_bytes_per_round_per_worker"),
                "held parameter bytes (mean over workers)": ratio("param_bytes_per_worker_mean"),
                "peak memory": ratio("peak_memory_bytes_per_worker"),
            }
        )
    return rows


def paper_table(benches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table 1 in the paper's convention (:func:`resist.paper.table1_bytes_per_round`, which the
    benchmarks applied) for PreActResNet-101, next to the paper's figures; ResIST from the benchmark
    whose minimum depth deals the paper's slot count (:data:`resist.paper.TABLE1_MIN_DEPTH`)."""
    rows = []
    for workers, (paper_local, paper_resist) in TABLE1_GB.items():
        depth = TABLE1_MIN_DEPTH[workers]
        ours = [b for b in benches if b["model"] == "preact_resnet101" and b["S"] == workers]
        local = next((b["protocols"]["local_sgd"] for b in ours if "local_sgd" in b["protocols"]), None)
        matching = [b for b in ours if "resist" in b["protocols"] and b["min_depth"] == depth]
        resist = next((b["protocols"]["resist"] for b in matching), None)
        if local is None or resist is None:
            continue
        rows.append(
            {
                "S": workers,
                "local SGD (measured)": f"{local['table1_bytes_per_round'] / 1e9:.3f} GB",
                "local SGD (paper)": f"{paper_local:.3f} GB",
                "ResIST (measured)": f"{resist['table1_bytes_per_round'] / 1e9:.3f} GB (m = {depth})",
                "ResIST (paper)": f"{paper_resist:.3f} GB",
            }
        )
    return rows


def write_plot(benches: list[dict[str, Any]], out: Path) -> Path:
    """Wire MB per round per worker, one group of bars per PreActResNet-101 benchmark."""
    chosen = [b for b in benches if b["model"] == "preact_resnet101" and len(b["protocols"]) > 1]
    protocols = ["ddp", "local_sgd", "resist"]
    width = 0.8 / len(protocols)
    path = out / "wire_bytes_per_round.png"
    with figure(path, size=(6.4, 4.0)) as axis:
        for k, protocol in enumerate(protocols):  # a benchmark that did not run a protocol has no bar
            present = [(i, b) for i, b in enumerate(chosen) if protocol in b["protocols"]]
            xs = [i + (k - 1) * width for i, _ in present]
            ys = [b["protocols"][protocol]["wire_bytes_per_round_per_worker"] / 1e6 for _, b in present]
            axis.bar(xs, ys, width=width, label=protocol)
        axis.set_xticks(range(len(chosen)))
        axis.set_xticklabels([f"S = {b['S']}" + (f", m = {b['min_depth']}" if b["min_depth"] else "") for b in chosen])
        axis.set_ylabel("wire MB per round per worker")
        axis.set_title("PreActResNet-101: bytes per round (ddp: per step)")
        axis.legend()
        axis.grid(axis="y", alpha=0.3)
    return path


def sections(args: argparse.Namespace) -> Iterator[Section]:
    """The README's ``results`` section and the bar plot, from the benchmarks under ``args.runs``."""
    benches = load_benches(args.runs)
    when = time.strftime("%Y-%m-%d", time.gmtime(max(b["finished"] for b in benches)))
    lines = [
        "Per protocol and benchmark (MB = 10^6 bytes; per round and per worker, over the measured rounds; "
        "`cost model`: the expectation `dry_run=true` prints; `of these rounds`: the cost model of the measured "
        "rounds' own random partitions):",
        "",
        render(bytes_table(benches)),
        "",
        "ResIST / local SGD, measured side by side:",
        "",
        render(ratio_table(benches)),
        "",
        "The paper's Table 1 (2 × parameter bytes held, summed over workers; decimal GB; 100 classes):",
        "",
        render(paper_table(benches)),
        "",
        f"Measured: {len(benches)} benchmarks, the last finished {when}.",
    ]
    yield Section(lines, [write_plot(benches, args.out)])


def main(argv: list[str]) -> None:
    study_main(
        argv,
        doc=__doc__,
        options=[
            Option("--runs", HERE / "runs", "the folder run.sh wrote"),
            Option("--out", HERE, "the folder of README.md and the plot"),
        ],
        sections=sections,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
