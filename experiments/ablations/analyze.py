"""The ablations' results from their runs: one row per variant of ResIST at S = 4 (what it changes,
named from the runs' configs), its final accuracy and the difference from the reference run (the
CIFAR-10 study's ResIST S = 4 seed 0 run, which has every default), bytes and wall-clock; and the
accuracy plots. Rewrites the README's ``results`` section and the PNG files beside it.

Usage (from the repository root):
    python -m experiments.ablations.analyze [--runs DIR] [--reference-runs DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from resist.analysis.plots import write_plots
from resist.analysis.runs import RunResult, RunsError, render, table, varying_settings
from resist.analysis.study import Option, Section, provenance, study_main, study_runs

HERE = Path(__file__).resolve().parent
THRESHOLDS = (0.4, 0.5)


def reference_run(candidates: list[RunResult]) -> RunResult:
    """The CIFAR-10 study's ResIST run at S = 4 with seed 0."""
    for run in candidates:
        if (run.protocol, run.workers, run.seed) == ("resist", 4, 0):
            return run
    raise RunsError(
        "ablations: no ResIST S = 4 seed 0 run among the reference runs (fix: run experiments/cifar10/run.sh)"
    )


def sections(args: argparse.Namespace) -> Iterator[Section]:
    """The README's ``results`` section and the accuracy plots: the runs under ``args.runs`` against
    the reference run among ``args.reference_runs``."""
    reference = reference_run(study_runs(args.reference_runs))
    results = [reference, *study_runs(args.runs)]
    varying = varying_settings(results)

    def changes(run: RunResult) -> str:
        """What ``run`` changes from the reference: its settings of other values."""
        own, base = dict(run.settings), dict(reference.settings)
        changed = [f"{key}={own[key]}" for key in varying if key in own and own[key] != base.get(key)]
        if run.local_steps != reference.local_steps:
            changed.append(f"protocol.local_steps={run.local_steps}")
        return ", ".join(changed) or "reference (defaults)"

    rows = []
    for run in results:  # one row per run, even where two runs share their settings
        row = table([run], THRESHOLDS)[0]
        row["settings"] = changes(run)
        row["Δ final acc"] = f"{100 * (run.final_accuracy - reference.final_accuracy):+.2f} points"
        rows.append(row)
    lines = [
        f"ResIST, S = 4, seed 0; each row changes one thing (the varying settings: "
        f"{', '.join(f'`{key}`' for key in varying)} and l). Bytes are measured wire bytes of all workers.",
        "",
        render(rows),
        "",
        f"Measured: {provenance(results)}.",
    ]
    yield Section(lines, write_plots(results, args.out, label_of=lambda run: changes(run).replace("protocol.", "")))


def main(argv: list[str]) -> None:
    study_main(
        argv,
        doc=__doc__,
        options=[
            Option("--runs", HERE / "runs", "the folder run.sh wrote"),
            Option("--reference-runs", HERE.parent / "cifar10" / "runs", "the CIFAR-10 study's runs"),
            Option("--out", HERE, "the folder of README.md and the plots"),
        ],
        sections=sections,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
