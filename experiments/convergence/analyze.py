"""The convergence study's results from its runs' records: the table of every setting, each setting
against local SGD at epochs 2, 5, 10 and 20 (does the gap shrink with training length?), local
SGD's gain per epoch (the budget's stopping rule), and the accuracy plots against epochs, bytes and
wall-clock. Rewrites the README's ``results`` section and the PNG files beside it.

Usage (from the repository root): python -m experiments.convergence.analyze [--runs DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from resist.analysis.plots import write_plots
from resist.analysis.runs import RunResult, render, table
from resist.analysis.study import Option, Section, provenance, study_main, study_runs

HERE = Path(__file__).resolve().parent
THRESHOLDS = (0.7, 0.8)
EPOCHS = (2, 5, 10, 20)


def setting_of(result: RunResult) -> str:
    """The run's setting: its protocol, ``+outer`` with ResIST's outer optimizer, its compression."""
    settings = dict(result.settings)
    name = result.protocol
    if settings.get("protocol.outer_optimizer", "none") != "none":
        name += "+outer"
    compress = settings.get("protocol.compress", "none")
    return name if compress == "none" else f"{name} {compress}"


def accuracy_at(result: RunResult, epoch: float) -> float | None:
    """The run's test accuracy at the first evaluation at or after ``epoch``."""
    return next((p.accuracy for p in result.curve if p.epoch >= epoch - 1e-9), None)


def _mean(values: Sequence[float]) -> float:
    return statistics.mean(values)


def against_local_sgd(results: list[RunResult]) -> list[dict[str, Any]]:
    """Each setting's mean accuracy minus local SGD's at :data:`EPOCHS`, and its bytes and
    wall-clock to train as fractions of local SGD's (means over the seeds each has)."""
    by_setting: dict[str, list[RunResult]] = {}
    for result in results:
        by_setting.setdefault(setting_of(result), []).append(result)
    reference = by_setting.get("local_sgd")
    if not reference:
        return []
    rows = []
    for setting, runs in by_setting.items():
        row: dict[str, Any] = {"setting": setting, "seeds": ",".join(str(r.seed) for r in runs)}
        for epoch in EPOCHS:
            ours = [a for a in (accuracy_at(r, epoch) for r in runs) if a is not None]
            theirs = [a for a in (accuracy_at(r, epoch) for r in reference) if a is not None]
            gap = f"{100 * (_mean(ours) - _mean(theirs)):+.2f}" if ours and theirs else "-"
            row[f"Δ acc at epoch {epoch} (points)"] = gap
        row["bytes to train ÷ local SGD's"] = (
            f"{_mean([r.training_bytes for r in runs]) / _mean([r.training_bytes for r in reference]):.3f}"
        )
        row["wall-clock ÷ local SGD's"] = (
            f"{_mean([r.seconds for r in runs]) / _mean([r.seconds for r in reference]):.3f}"
        )
        rows.append(row)
    return rows


def epoch_gains(results: list[RunResult]) -> str:
    """Local SGD's accuracy gain over each of its last five epochs (points; seed 0's first run)."""
    reference = [r for r in results if setting_of(r) == "local_sgd"]
    if not reference:
        return "No local SGD run yet: its gain per epoch (the budget's stopping rule) is not known."
    curve = reference[0].curve
    gains = [f"{100 * (b.accuracy - a.accuracy):+.2f}" for a, b in zip(curve[-6:], curve[-5:], strict=False)]
    return f"Local SGD's gain over each of its last {len(gains)} epochs (points): {', '.join(gains)}."


def sections(args: argparse.Namespace) -> Iterator[Section]:
    """The README's ``results`` section and the plots, from the runs under ``args.runs``."""
    results = study_runs(args.runs)
    lines = [
        "Every setting, mean ± std over its seeds; bytes are measured wire bytes of all workers; "
        "`to 70 %` / `to 80 %`: wall-clock and bytes when an evaluation first reached it.",
        "",
        render(table(results, THRESHOLDS)),
        "",
        "Each setting against local SGD (means over seeds): accuracy difference at epochs "
        f"{', '.join(map(str, EPOCHS))}, bytes and wall-clock to train:",
        "",
        render(against_local_sgd(results)),
        "",
        epoch_gains(results),
        "",
        "Each run:",
        "",
        render(
            [
                {
                    "setting": setting_of(r),
                    "seed": r.seed,
                    "final acc": f"{100 * r.final_accuracy:.2f} %",
                    "wall-clock": f"{r.seconds:,.0f} s",
                    "finished": r.finished,
                }
                for r in results
            ]
        ),
        "",
        f"Measured: {provenance(results)}.",
    ]
    yield Section(lines, write_plots(results, args.out, label_of=setting_of))


def main(argv: list[str]) -> None:
    study_main(
        argv,
        doc=__doc__,
        options=[
            Option("--runs", HERE / "records", "the folder run.sh copies each finished run's records to"),
            Option("--out", HERE, "the folder of README.md and the plots"),
        ],
        sections=sections,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
