"""The plots a comparison needs, one line per run: test accuracy against cumulative wire bytes,
against wall-clock and against epochs, written as PNG (matplotlib, without a display)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from resist.analysis.runs import RunResult, grouped

AXES = {
    "accuracy_vs_bytes.png": ("cumulative wire bytes, all workers (MB, log scale)", lambda p: p.wire_bytes / 1e6),
    "accuracy_vs_time.png": ("wall-clock (s)", lambda p: p.seconds),
    "accuracy_vs_epochs.png": ("epochs", lambda p: p.epoch),
}


@contextlib.contextmanager
def figure(path: Path, *, size: tuple[float, float] = (6.4, 4.2)) -> Iterator[Any]:
    """One matplotlib axis (no display needed), written to ``path`` as PNG (100 dpi, tight layout)
    when the block ends."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    drawing, axis = plt.subplots(figsize=size, dpi=100)
    try:
        yield axis
        drawing.tight_layout()
        drawing.savefig(path)
    finally:
        plt.close(drawing)


def write_plots(
    results: Sequence[RunResult], out: Path, *, label_of: Callable[[RunResult], str] | None = None
) -> list[Path]:
    """Write the three plots of ``results`` into ``out``; returns their paths. One line per run:
    runs of one group (seeds apart) share a colour, and a group's seeds differ in line style.
    ``label_of`` names a run's group in the legend (default: protocol, S and l)."""
    styles = ("-", "--", ":", "-.")
    name_of = label_of or (lambda result: result.label)
    lines = [
        (result, f"C{g % 10}", styles[k % len(styles)])
        for g, members in enumerate(grouped(results))
        for k, result in enumerate(members)
    ]
    written = []
    for name, (label, x_of) in AXES.items():
        with figure(out / name) as axis:
            for result, colour, style in lines:
                axis.plot(
                    [x_of(p) for p in result.curve],
                    [100 * p.accuracy for p in result.curve],
                    color=colour,
                    linestyle=style,
                    marker="o",
                    markersize=3,
                    label=f"{name_of(result)} seed {result.seed}",
                )
            if name == "accuracy_vs_bytes.png":  # DDP sends orders of magnitude more than the others
                axis.set_xscale("log")
            axis.set_xlabel(label)
            axis.set_ylabel("test accuracy (%)")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
        written.append(out / name)
    return written
