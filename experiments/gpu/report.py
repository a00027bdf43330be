"""The GPU study's README section from its figures (pure: no torch, no GPU): what
``python -m experiments.gpu.check`` measured and wrote to ``runs/<time>/figures.json``, as Markdown
tables. Running this module rewrites the README's ``results`` section from a saved figures file.

Units in a figures file: seconds (``*_s``, ``*_seconds``), milliseconds (``*_ms*``), bytes
(``*_bytes``), images per second (``images_per_s``), accuracy as a fraction.

Usage (from the repository root): python -m experiments.gpu.report [--figures FILE] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from resist.analysis.runs import render
from resist.analysis.study import publish
from resist.errors import UserError, exit_with

HERE = Path(__file__).resolve().parent
GIB = 2**30


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value / GIB:.2f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ratio(num: float | None, den: float | None) -> str:
    return "-" if num is None or not den else f"{num / den:.3f}"


def machine_line(figures: dict[str, Any]) -> str:
    """One sentence: the GPU, the software, the float32 maths settings, the date, the script's seconds."""
    m = figures["machine"]
    tf32 = f"TF32 for float32 convolutions {'on' if m['tf32_convolutions'] else 'off'}, for matmuls " + (
        "on" if m["tf32_matmul"] else "off"
    )
    return (
        f"Measured on {m['gpu']} ({m['gpu_memory_bytes'] / GIB:.0f} GiB; {m['gpus_visible']} visible), torch "
        f"{m['torch']}, CUDA {m['cuda']}, cuDNN {m['cudnn']} ({tf32}; cudnn.benchmark "
        f"{'on' if m['cudnn_benchmark'] else 'off'}), {m['date']}; the study took "
        f"{figures['script_seconds']:.0f} s (start-up apart). Raw figures: `runs/{figures['name']}/figures.json`."
    )


def default_run_lines(run: dict[str, Any]) -> list[str]:
    """The default run: what ran (and what was refused before it), its accuracy and seconds."""
    lines = [f"- `{r['command']}`: {r['refusal']}" for r in run["refused"]]
    if lines:
        lines = ["Refused before starting (the next command ran instead):", "", *lines, ""]
    if run.get("error"):
        return [*lines, f"`{run['command']}` failed: {run['error']}"]
    row = {
        "command": f"`{run['command']}`",
        "protocol": run["protocol"],
        "workers": run["workers"],
        "final test accuracy": f"{100 * run['final_accuracy']:.2f} %",
        "training (s, the run's clock)": f"{run['train_seconds']:.1f}",
        "wall-clock (s, the whole command)": f"{run['wall_seconds']:.1f}",
    }
    return [*lines, render([row])]


_VARIANT_COLUMNS = (
    "images/s",
    "ms/step (mean)",
    "ms/step (median)",
    "speed-up vs float32",
    "peak memory (GiB)",
    "warm-up (s)",
)


def variant_rows(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per setting of the full model; speed-up against the first (float32) setting, from
    mean step times. A setting that failed or was skipped shows why."""
    variants = figures["variants"]
    base = variants[0].get("step_ms_mean") if variants else None
    rows = []
    for v in variants:
        row: dict[str, Any] = {"setting": v["name"]}
        if v.get("error"):
            rows.append(row | {"images/s": v["error"]} | dict.fromkeys(_VARIANT_COLUMNS[1:], "-"))
            continue
        values = (
            f"{v['images_per_s']:,.0f}",
            _ms(v["step_ms_mean"]),
            _ms(v["step_ms_median"]),
            _ratio(base, v["step_ms_mean"]),
            _gib(v["peak_bytes"]),
            f"{v['warmup_s']:.1f}",
        )
        rows.append(row | dict(zip(_VARIANT_COLUMNS, values, strict=True)))
    return rows


def subnet_rows(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (setting, S): worker 0's sub-network against the full model in the same setting
    (ratios of mean step times and of peak memory). A measurement that failed shows why."""
    full = {v["name"]: v for v in figures["variants"]}
    rows = []
    for s in figures["subnets"]:
        reference = full.get(s["variant"], {})
        row: dict[str, Any] = {
            "setting": s["variant"],
            "S": s["S"],
            "worker 0's partitioned blocks": ",".join(map(str, s["own_blocks"])),
            "blocks held": f"{s['blocks_held']} / {s['blocks_total']}",
            "block share": f"{s['blocks_held'] / s['blocks_total']:.3f}",
        }
        if s.get("error"):
            values = (s["error"], "-", "-", "-")
        else:
            values = (
                _ms(s["step_ms_mean"]),
                _ratio(s["step_ms_mean"], reference.get("step_ms_mean")),
                _gib(s["peak_bytes"]),
                _ratio(s["peak_bytes"], reference.get("peak_bytes")),
            )
        columns = ("ms/step (mean)", "step / full step", "peak memory (GiB)", "peak / full peak")
        rows.append(row | dict(zip(columns, values, strict=True)))
    return rows


def section(figures: dict[str, Any]) -> list[str]:
    """The README's ``results`` section (lines) from a figures dict as ``check`` writes it."""
    plan = figures["plan"]
    return [
        machine_line(figures),
        "",
        "**1. The default run on the GPU** (embedded digits, seed 0; accuracy from the run's summary record):",
        "",
        *default_run_lines(figures["default_run"]),
        "",
        f"**2. One training step of {plan['arch']}** ({figures['params']:,} parameters, {plan['num_classes']} "
        f"classes, batch {plan['batch']} of {plan['image_size']}×{plan['image_size']} random images already on "
        f"the GPU; SGD with momentum; {plan['warmup_steps']} warm-up steps, then {plan['steps']} timed by CUDA "
        "events; peak = `torch.cuda.max_memory_allocated` over the timed steps; warm-up includes compilation):",
        "",
        render(variant_rows(figures)),
        "",
        "**3. A ResIST worker's sub-network against the full model** (worker 0 of the paper's policy's "
        f"partition at round 0, seed {plan['seed']}; the same step and batch; block share = residual blocks "
        "held / all, the compute ceiling if every block cost the same):",
        "",
        render(subnet_rows(figures)),
    ]


def newest_figures(runs: Path) -> Path:
    """The newest ``figures.json`` under ``runs`` (folders are named by UTC time)."""
    found = sorted(runs.glob("*/figures.json"))
    if not found:
        raise UserError(
            f"gpu study: no figures under {runs} (fix: run python -m experiments.gpu.check on a CUDA machine)"
        )
    return found[-1]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", type=Path, help="a figures.json (default: the newest under runs/)")
    parser.add_argument("--out", type=Path, default=HERE, help="the folder of README.md")
    args = parser.parse_args(argv)
    try:
        path = args.figures or newest_figures(HERE / "runs")
        publish(args.out, section(json.loads(path.read_text(encoding="utf-8"))))
    except UserError as exc:
        exit_with(str(exc))
    except (OSError, ValueError) as exc:  # a missing or unreadable figures file
        exit_with(f"--figures: {exc} (fix: name a figures.json that python -m experiments.gpu.check wrote)")


if __name__ == "__main__":
    main(sys.argv[1:])
