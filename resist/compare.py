"""``python -m resist.compare RUN_DIR... [--out DIR] [--thresholds 0.9,0.95]``: runs side by side.

Prints one Markdown table row per group of runs (runs that differ only in their seed: mean ± std)
and writes, into ``--out`` (default ``runs/compare/<time>``, never an existing folder's files), the
table as ``compare.md`` and the plots: test accuracy against cumulative wire bytes, wall-clock and
epochs (``accuracy_vs_{bytes,time,epochs}.png``), one line per run. A Hydra multirun directory
stands for all its runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from resist.analysis.plots import AXES, write_plots
from resist.analysis.runs import load_run, render, run_dirs, table
from resist.errors import UserError, exit_with


def _thresholds(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v.strip()]
    if not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError("thresholds are accuracies in (0, 1], e.g. 0.9,0.95")
    return values


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m resist.compare", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories or Hydra multirun directories")
    parser.add_argument("--out", type=Path, default=None, help="folder for compare.md and the plots")
    parser.add_argument("--thresholds", type=_thresholds, default=[0.9, 0.95], help="time-to-accuracy levels")
    args = parser.parse_args(argv)
    try:
        results = [load_run(path) for path in run_dirs(args.runs)]
        out = args.out or Path("runs") / "compare" / time.strftime("%Y-%m-%d_%H-%M-%S")
        existing = [out / name for name in ("compare.md", *AXES) if (out / name).exists()]
        if existing:
            raise UserError(f"--out: {existing[0]} exists; refusing to overwrite it (fix: choose another --out folder)")
        out.mkdir(parents=True, exist_ok=True)
        markdown = render(table(results, args.thresholds))
        print(markdown)
        (out / "compare.md").write_text(markdown + "\n", encoding="utf-8")
        for path in write_plots(results, out):
            print(f"wrote {path}")
    except UserError as exc:
        exit_with(str(exc))


if __name__ == "__main__":
    main(sys.argv[1:])
