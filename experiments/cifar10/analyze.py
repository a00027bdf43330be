"""The CIFAR-10 study's results from its runs: the table of every (protocol, S) group over its
seeds, ResIST against local SGD per S (the paper's claim: within 1 point at far fewer bytes), and
the accuracy plots against bytes, wall-clock and epochs. Rewrites the README's ``results`` section
and the PNG files beside it.

Usage (from the repository root): python -m experiments.cifar10.analyze [--runs DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from resist.analysis.plots import write_plots
from resist.analysis.runs import render, table, versus
from resist.analysis.study import Option, Section, provenance, study_main, study_runs

HERE = Path(__file__).resolve().parent
THRESHOLDS = (0.4, 0.5)


def sections(args: argparse.Namespace) -> Iterator[Section]:
    """The README's ``results`` section and the accuracy plots, from the runs under ``args.runs``."""
    results = study_runs(args.runs)
    lines = [
        "Every (protocol, S) group, mean ± std over its seeds; bytes are measured wire bytes of all "
        "workers; `to 40 %` / `to 50 %`: wall-clock and bytes when an evaluation first reached it.",
        "",
        render(table(results, THRESHOLDS)),
        "",
        "ResIST against local SGD (means over seeds):",
        "",
        render(versus(results, "resist", "local_sgd")),
        "",
        "Each run (wall-clock as measured; compare it across runs measured alike, see the note below):",
        "",
        render(
            [
                {
                    "protocol": r.protocol,
                    "S": r.workers,
                    "seed": r.seed,
                    "final acc": f"{100 * r.final_accuracy:.2f} %",
                    "wall-clock": f"{r.seconds:.1f} s",
                    "finished": r.finished,
                }
                for r in results
            ]
        ),
        "",
        f"Measured: {provenance(results)}.",
    ]
    yield Section(lines, write_plots(results, args.out))


def main(argv: list[str]) -> None:
    study_main(
        argv,
        doc=__doc__,
        options=[
            Option("--runs", HERE / "runs", "the folder run.sh wrote"),
            Option("--out", HERE, "the folder of README.md and the plots"),
        ],
        sections=sections,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
