"""The top-level README's measured table, from the runs of ``experiments/defaults/run.sh``.

The figures are recorded in ``figures.json`` beside this script (what the table is made of: each
run's command, final test accuracy, wire bytes by purpose, steps, platform and date), and the
README's ``measured`` section is rendered from that file; the test suite checks that the README
holds what :func:`render` makes of the recorded figures.

Usage (from the repository root): python -m experiments.defaults.analyze [--runs DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resist.analysis.runs import RunResult
from resist.analysis.study import Option, Section, provenance, study_main, study_runs
from resist.logging.jsonl import read_jsonl

HERE = Path(__file__).resolve().parent
FIGURES = HERE / "figures.json"
DEFAULTS = {"protocol.name": "resist", "num_workers": 2, "seed": 0}  # the embedded default's (conf/config.yaml)


def command(result: RunResult, start: dict[str, Any], reference: dict[str, Any]) -> str:
    """The command line that reproduces ``result`` (``start``: its start record) on the embedded
    default: its protocol, workers and seed where they differ from the default's, and its CPU kernels
    and threads per worker where they differ from those of ``reference`` (the first run's start)."""
    values = {"protocol.name": result.protocol, "num_workers": result.workers, "seed": result.seed}
    keys = {"protocol.name": "protocol"}
    extra = [f"{keys.get(k, k)}={v}" for k, v in values.items() if v != DEFAULTS[k]]
    threads = start.get("platform/threads_per_worker")
    if threads != reference.get("platform/threads_per_worker"):
        extra.append(f"launcher.threads_per_worker={threads}")
    kernels = start.get("platform/cpu_capability")
    prefix = (
        [f"ATEN_CPU_CAPABILITY={str(kernels).lower()}"] if kernels != reference.get("platform/cpu_capability") else []
    )
    return " ".join([*prefix, "python -m resist.run", *extra])


def figures(results: list[RunResult]) -> dict[str, Any]:
    """What the table shows, per run, and where it was measured."""
    rows, reference = [], read_jsonl(results[0].path.metrics)[0]
    for result in results:
        records = read_jsonl(result.path.metrics)
        start, summary = records[0], records[-1]
        purposes = {
            key.removeprefix("comm/cum_wire_bytes/"): value
            for key, value in sorted(summary.items())
            if key.startswith("comm/cum_wire_bytes/") and value
        }
        rows.append(
            {
                "command": command(result, start, reference),
                "test_accuracy": result.final_accuracy,
                "steps": summary["step"],
                "training_wire_bytes": result.training_bytes,
                "wire_bytes": result.total_bytes,
                "wire_bytes_by_purpose": purposes,
            }
        )
    return {"runs": rows, "measured": provenance(results)}


def _size(wire_bytes: float) -> str:
    """Megabytes to two decimals; a few bytes (a vote, the weights' digests) as bytes; none as 0."""
    if wire_bytes == 0:
        return "0"
    return f"{wire_bytes / 1e6:.2f} MB" if wire_bytes >= 1e4 else f"{wire_bytes:,.0f} B"


def render(recorded: dict[str, Any]) -> str:
    """The README's table of ``recorded`` figures (:func:`figures`)."""
    lines = [
        "| command | test accuracy | steps per worker | bytes sent to train (all workers) | in all, by purpose |",
        "|---|---|---|---|---|",
    ]
    for row in recorded["runs"]:
        parts = ", ".join(f"{purpose} {_size(value)}" for purpose, value in row["wire_bytes_by_purpose"].items())
        total = f"{_size(row['wire_bytes'])} ({parts})" if parts else "0"
        lines.append(
            f"| `{row['command']}` | {100 * row['test_accuracy']:.2f} % | {row['steps']} | "
            f"{_size(row['training_wire_bytes'])} | {total} |"
        )
    lines += ["", f"Measured (modeled wire bytes, MB = 10^6 bytes): {recorded['measured']}."]
    return "\n".join(lines)


def sections(args: argparse.Namespace) -> Iterator[Section]:
    recorded = figures(study_runs(args.runs))
    args.figures.write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.figures}")
    yield Section([render(recorded)], name="measured")


def main(argv: list[str]) -> None:
    study_main(
        argv,
        doc=__doc__,
        options=[
            Option("--runs", HERE / "runs", "the folder run.sh wrote"),
            Option("--out", HERE.parents[1], "the folder of the README the table goes into"),
            Option("--figures", FIGURES, "where the recorded figures go"),
        ],
        sections=sections,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
