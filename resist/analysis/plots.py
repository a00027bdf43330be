"""The plots a comparison needs, one line per run: test accuracy against cumulative wire bytes,
against wall-clock and against epochs, written as PNG (matplotlib, without a display)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from resist.analysis.runs import RunResult, grouped

AXES = {
    "accuracy_vs_bytes.png": ("cumulative wire bytes, all workers (MB, log scale)", lambda p: p.wire_bytes / 1e6),
    "accuracy_vs_time.png": ("wall-clock (s)", lambda p: p.seconds),
    "accuracy_vs_epochs.png": ("epochs", lambda p: p.epoch),
}


def write_plots(
    results: Sequence[RunResult], out: Path, *, label_of: Callable[[RunResult], str] | None = None
) -> list[Path]:
    """Write the three plots of ``results`` into ``out``; returns their paths. One line per run:
    runs of one group (seeds apart) share a colour, and a group's seeds differ in line style.
    ``label_of`` names a run's group in the legend (default: protocol, S and l)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    styles = ("-", "--", ":", "-.")
    lines = [
        (result, f"C{g % 10}", styles[k % len(styles)])
        for g, members in enumerate(grouped(results))
        for k, result in enumerate(members)
    ]
    written = []
    for name, (label, x_of) in AXES.items():
        figure, axis = plt.subplots(figsize=(6.4, 4.2), dpi=100)
        for result, colour, style in lines:
            axis.plot(
                [x_of(p) for p in result.curve],
                [100 * p.accuracy for p in result.curve],
                color=colour,
                linestyle=style,
                marker="o",
                markersize=3,
                label=f"{(label_of or (lambda r: r.label))(result)} seed {result.seed}",
            )
        if name == "accuracy_vs_bytes.png":  # DDP sends orders of magnitude more than the others
            axis.set_xscale("log")
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
