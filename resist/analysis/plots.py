"""The plots a comparison needs, one line per run: test accuracy against cumulative wire bytes,
against wall-clock and against epochs, written as PNG (matplotlib, without a display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from resist.analysis.runs import RunResult

AXES = {
    "accuracy_vs_bytes.png": ("cumulative wire bytes, all workers (MB)", lambda p: p.wire_bytes / 1e6),
    "accuracy_vs_time.png": ("wall-clock (s)", lambda p: p.seconds),
    "accuracy_vs_epochs.png": ("epochs", lambda p: p.epoch),
}


def write_plots(results: Sequence[RunResult], out: Path) -> list[Path]:
    """Write the three plots of ``results`` into ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    written = []
    for name, (label, x_of) in AXES.items():
        figure, axis = plt.subplots(figsize=(6.4, 4.2), dpi=100)
        for result in results:
            axis.plot(
                [x_of(p) for p in result.curve],
                [100 * p.accuracy for p in result.curve],
                marker="o",
                markersize=3,
                label=f"{result.label} seed {result.seed}",
            )
        axis.set_xlabel(label)
        axis.set_ylabel("test accuracy (%)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        figure.tight_layout()
        path = out / name
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written
