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
from pathlib import Path

from resist.analysis.plots import write_plots
from resist.analysis.runs import RunResult, RunsError, render, table, varying_settings
from resist.analysis.study import provenance, publish, study_runs
from resist.errors import UserError, exit_with

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


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=HERE / "runs", help="the folder run.sh wrote")
    parser.add_argument(
        "--reference-runs", type=Path, default=HERE.parent / "cifar10" / "runs", help="the CIFAR-10 study's runs"
    )
    parser.add_argument("--out", type=Path, default=HERE, help="the folder of README.md and the plots")
    args = parser.parse_args(argv)
    try:
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
        sections = [
            f"ResIST, S = 4, seed 0; each row changes one thing (the varying settings: "
            f"{', '.join(f'`{key}`' for key in varying)} and l). Bytes are measured wire bytes of all workers.",
            "",
            render(rows),
            "",
            f"Measured: {provenance(results)}.",
        ]
        publish(
            args.out,
            sections,
            write_plots(results, args.out, label_of=lambda run: changes(run).replace("protocol.", "")),
        )
    except UserError as exc:
        exit_with(str(exc))


if __name__ == "__main__":
    main(sys.argv[1:])
