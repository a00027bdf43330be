"""The model-families study's results from its runs: ResIST against float32 ring local SGD on
torchvision's ResNets and ViTs, in bytes per round and bytes held per worker (benchmarks, measured,
beside the cost model), and in accuracy at the CIFAR-10 study's budget (tv_resnet18, vit_tiny).
Rewrites the README's ``bytes`` and ``accuracy`` sections and the PNG files beside it.

Usage (from the repository root): python -m experiments.models.analyze [--runs DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resist.analysis.benches import load_benches, side_by_side
from resist.analysis.plots import figure, write_plots
from resist.analysis.runs import render, table, versus
from resist.analysis.study import Option, Section, provenance, study_main, study_runs
from resist.analysis.units import megabytes

HERE = Path(__file__).resolve().parent
THRESHOLDS = (0.3, 0.4)
MODELS = ("tv_resnet50", "tv_resnet101", "tv_resnet152", "vit_tiny", "vit_small")


def partitioned_share(config: dict[str, Any]) -> tuple[int, float]:
    """The benchmark's network (its ``bench.json`` config): its parameters and the share of them in
    the blocks ResIST partitions (the cost model's sizes, from a meta-device build)."""
    from resist.config import BatchNormMode, Config, DatasetConfig, DatasetName, ModelConfig
    from resist.protocols.expected_bytes import ModelShapes

    model, dataset = dict(config["model"]), config.get("dataset", {})
    model["batchnorm"] = BatchNormMode(model.get("batchnorm", BatchNormMode.batch_stats))
    cfg = Config(num_workers=config["num_workers"], model=ModelConfig(**model))
    cfg.dataset = DatasetConfig(
        name=DatasetName(dataset.get("name", "synthetic")),
        num_classes=dataset.get("num_classes", 10),
        image_size=dataset.get("image_size"),
        channels=dataset.get("channels", 3),
    )
    shapes = ModelShapes(cfg)
    return shapes.parameters, sum(shapes.block_params.values()) / shapes.params


def bytes_rows(runs: Path) -> list[dict[str, Any]]:
    """One row per benchmark, in model then S order."""
    rows = []
    for bench, resist, local in side_by_side(load_benches(runs)):
        parameters, share = partitioned_share(bench["config"])
        measured, local_bytes = resist["wire_bytes_per_round_per_worker"], local["wire_bytes_per_round_per_worker"]
        expected = resist["expected_wire_bytes_per_round_per_worker"]
        held = resist["held_bytes_per_worker"] / local["held_bytes_per_worker"]
        rows.append(
            {
                "model": bench["model"],
                "S": bench["S"],
                "m": bench["min_depth"],
                "parameters": f"{parameters / 1e6:.1f} M",
                "partitioned": f"{100 * share:.1f} %",
                "local SGD MB/round": megabytes(local_bytes, unit=False),
                "ResIST MB/round": megabytes(measured, unit=False),
                "ResIST cost model": megabytes(expected, unit=False),
                "measured / cost model of these rounds": (
                    f"{measured / resist['window_wire_bytes_per_round_per_worker']:.4f}"
                ),
                "ResIST ÷ local SGD, bytes": f"{measured / local_bytes:.3f}",
                "cost model ÷ local SGD": f"{expected / local['expected_wire_bytes_per_round_per_worker']:.3f}",
                "ResIST ÷ local SGD, held (max)": f"{held:.3f}",
            }
        )
    order = {name: k for k, name in enumerate(MODELS)}
    return sorted(rows, key=lambda row: (order.get(row["model"], len(order)), row["S"]))


def ratio_plots(rows: list[dict[str, Any]], out: Path) -> Iterator[Path]:
    """ResIST ÷ local SGD against S, one line per network: wire bytes per round, and bytes held."""
    for name, column, label in (
        ("bytes_ratio.png", "ResIST ÷ local SGD, bytes", "wire bytes per round, ResIST ÷ local SGD"),
        ("held_ratio.png", "ResIST ÷ local SGD, held (max)", "bytes held per worker, ResIST ÷ local SGD"),
    ):
        with figure(out / name) as axis:
            for model in dict.fromkeys(row["model"] for row in rows):
                mine = [row for row in rows if row["model"] == model]
                axis.plot([r["S"] for r in mine], [float(r[column]) for r in mine], marker="o", label=model)
            axis.set_xscale("log", base=2)
            axis.set_xticks([2, 4, 8], ["2", "4", "8"])
            axis.set_xlabel("workers S (m = 4 at S = 8)")
            axis.set_ylabel(label)
            axis.set_ylim(0, 1.05)
            axis.grid(alpha=0.3)
            axis.legend()
        yield out / name


def reading(rows: list[dict[str, Any]]) -> list[str]:
    """One generated line per network: its ratios at S = 2 / 4 / 8 and its partitioned share."""
    lines = []
    for model in dict.fromkeys(row["model"] for row in rows):
        mine = [row for row in rows if row["model"] == model]
        at = " / ".join(str(r["S"]) for r in mine)
        lines.append(
            f"- `{model}` ({mine[0]['parameters']} parameters, {mine[0]['partitioned']} of them in the partitioned "
            f"blocks): ResIST sends {' / '.join(r['ResIST ÷ local SGD, bytes'] for r in mine)} of local SGD's bytes "
            f"per round and holds {' / '.join(r['ResIST ÷ local SGD, held (max)'] for r in mine)} of its bytes "
            f"per worker at S = {at}."
        )
    return lines


def sections(args: argparse.Namespace) -> Iterator[Section]:
    """The ``bytes`` section (from ``<runs>/bytes``), then the ``accuracy`` one (``<runs>/accuracy``)."""
    rows = bytes_rows(args.runs / "bytes")
    lines = [
        "Every benchmark: measured wire bytes per round per worker (MB = 10^6 bytes) of float32 ring "
        "local SGD and of ResIST, the cost model's expectation for ResIST, ResIST's measured bytes "
        "over the cost model of the measured rounds' own partitions, and the ratios; `held`: parameters, "
        "buffers and momentum of the largest sub-network over the whole model's.",
        "",
        render(rows),
        "",
        *reading(rows),
    ]
    yield Section(lines, ratio_plots(rows, args.out), name="bytes")
    results = study_runs(args.runs / "accuracy")
    lines = [
        "Every (model, protocol) group, mean ± std over its seeds; bytes are measured wire bytes of all "
        "workers; `to 30 %` / `to 40 %`: wall-clock and bytes when an evaluation first reached it.",
        "",
        render(table(results, THRESHOLDS)),
        "",
    ]
    for model in dict.fromkeys(r.model for r in results):
        lines += [f"ResIST against local SGD on `{model}` (means over seeds):", ""]
        lines += [render(versus([r for r in results if r.model == model], "resist", "local_sgd")), ""]
    lines.append(f"Measured: {provenance(results)}.")
    plots = write_plots(results, args.out, label_of=lambda r: f"{r.model} {r.protocol}")
    yield Section(lines, plots, name="accuracy")


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
