"""The GPU study (``experiments/gpu/``) on a machine without a GPU: ``check`` refuses with one line and
writes nothing; its README section is built from a figures dict (pure); its step timing runs on the
CPU on a tiny network (seconds)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from experiments.gpu import check
from experiments.gpu.report import main as report_main
from experiments.gpu.report import section
from tests.conftest import REPO

STUDY = REPO / "experiments" / "gpu"


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_check_without_a_gpu_exits_2_with_one_line_naming_the_gpu_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(STUDY / "README.md", out / "README.md")
    before, study_before = (out / "README.md").read_text(), _tree(STUDY)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine that has one
    result = subprocess.run(
        [sys.executable, "-m", "experiments.gpu.check", "--out", str(out), "--runs", str(tmp_path / "runs")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resist: error:") and "needs a CUDA GPU" in lines[0], lines
    assert not (tmp_path / "runs").exists()
    assert _tree(out) == ["README.md"] and (out / "README.md").read_text() == before
    assert _tree(STUDY) == study_before


def _figures() -> dict:
    """A figures dict as ``check`` writes it: one refused attempt, a skipped compile, a failed sub-net."""

    def step(ms: float, peak: float, **extra) -> dict:
        return {"warmup_s": 2.0, "step_ms_mean": ms, "step_ms_median": ms - 1, "peak_bytes": peak, **extra}

    gib = 2**30
    variants = [
        {"name": "float32", **step(100.0, 4 * gib, images_per_s=1280.0)},
        {"name": "bf16 autocast", **step(50.0, 2 * gib, images_per_s=2560.0)},
        {"name": "bf16 + channels_last + torch.compile", "error": "skipped: 30 s of the time budget left"},
    ]
    subnet = {"stage": 2, "blocks_total": 33}
    subnets = [
        {"variant": "float32", "S": 2, "own_blocks": [1, 4], "blocks_held": 22, **subnet, **step(70.0, 3 * gib)},
        {"variant": "float32", "S": 4, "own_blocks": [6], "blocks_held": 17, **subnet, "error": "failed: OOM"},
    ]
    return {
        "name": "2027-01-01_00-00-00",
        "plan": {"arch": "preact_resnet101", "num_classes": 10, "image_size": 32, "batch": 128}
        | {"warmup_steps": 10, "steps": 50, "workers": [2, 4], "seed": 0},
        "params": 41350730,
        "machine": {
            "gpu": "NVIDIA H100 80GB HBM3",
            "gpu_memory_bytes": 80 * gib,
            "gpus_visible": 1,
            "torch": "2.14.1",
            "cuda": "13.0",
            "cudnn": 92400,
            "tf32_convolutions": True,
            "tf32_matmul": False,
            "cudnn_benchmark": False,
            "date": "2027-01-01 00:00 UTC",
        },
        "default_run": {
            "command": "python -m resist.run device=cuda num_workers=1 protocol=none",
            "refused": [{"command": "python -m resist.run device=cuda", "refusal": "resist: error: num_workers: no"}],
            "protocol": "none",
            "workers": 1,
            "final_accuracy": 0.99444,
            "train_seconds": 12.34,
            "wall_seconds": 25.6,
        },
        "variants": variants,
        "subnets": subnets,
        "script_seconds": 300.2,
    }


def test_the_section_shows_each_figure_and_its_ratios():
    text = "\n".join(section(_figures()))
    assert "Measured on NVIDIA H100 80GB HBM3 (80 GiB; 1 visible)" in text and "took 300 s (start-up apart)" in text
    assert "TF32 for float32 convolutions on, for matmuls off" in text
    assert "- `python -m resist.run device=cuda`: resist: error: num_workers: no" in text
    command = "`python -m resist.run device=cuda num_workers=1 protocol=none`"
    assert f"| {command} | none | 1 | 99.44 % | 12.3 | 25.6 |" in text
    assert "| float32 | 1,280 | 100.0 | 99.0 | 1.000 | 4.00 | 2.0 |" in text
    assert "| bf16 autocast | 2,560 | 50.0 | 49.0 | 2.000 | 2.00 | 2.0 |" in text
    assert "| bf16 + channels_last + torch.compile | skipped: 30 s of the time budget left | - |" in text
    # the S = 2 sub-net: 22 of 33 blocks held, 70 / 100 ms, 3 / 4 GiB
    assert "| float32 | 2 | 1,4 | 22 / 33 | 0.667 | 70.0 | 0.700 | 3.00 | 0.750 |" in text
    assert "| float32 | 4 | 6 | 17 / 33 | 0.515 | failed: OOM | - | - | - |" in text
    assert "41,350,730 parameters" in text and "batch 128 of 32×32" in text


def test_report_rewrites_only_the_results_section_from_a_figures_file(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(STUDY / "README.md", out / "README.md")
    original = (out / "README.md").read_text()
    assert "Not yet run on a GPU." in original
    figures = tmp_path / "figures.json"
    figures.write_text(json.dumps(_figures()))
    report_main(["--figures", str(figures), "--out", str(out)])
    written = (out / "README.md").read_text()
    head, tail = original.split("<!-- BEGIN results -->")[0], original.split("<!-- END results -->")[1]
    assert written.startswith(head) and written.endswith(tail)
    assert "Not yet run on a GPU." not in written and "| float32 | 1,280 |" in written


def test_step_timing_runs_on_the_cpu_on_a_tiny_network():
    plan = check.Plan(arch="preact_resnet_mini", image_size=8, batch=4, warmup_steps=1, steps=2)
    eager = (check.Variant("float32"), check.Variant("bf16 + channels_last", bf16=True, channels_last=True))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # (a busy 2-core machine runs these tiny steps many times slower on 2)
    try:
        variants, subnets = check.measure_all(
            plan, torch.device("cpu"), deadline=time.perf_counter(), eager=eager, compiled=check.COMPILED[:1]
        )
    finally:
        torch.set_num_threads(threads)
    assert [v["name"] for v in variants] == ["float32", "bf16 + channels_last", "torch.compile"]
    for v in variants[:2]:
        assert v["step_ms_mean"] > 0 and v["images_per_s"] > 0 and v["peak_bytes"] is None, v
    assert variants[2]["error"].startswith("skipped: 0 s of the time budget left")  # no budget left to compile
    # preact_resnet_mini: blocks [1, 1, 5, 1]; S = 2 holds 2 of stage 3's 4 partitionable blocks
    assert [(s["variant"], s["S"], s["blocks_held"], s["blocks_total"]) for s in subnets] == [
        ("float32", 2, 6, 8),
        ("float32", 4, 5, 8),
        ("bf16 + channels_last", 2, 6, 8),
        ("bf16 + channels_last", 4, 5, 8),
    ]
    assert all(s["step_ms_mean"] > 0 and "error" not in s for s in subnets)


def test_a_measurement_past_its_time_limit_is_skipped_and_one_that_raises_is_failed():
    cpu = torch.device("cpu")
    skipped = check._attempt(lambda: time.sleep(5) or {}, cpu, 1.0)
    assert skipped == {"error": "skipped: not finished within the 1 s left"}
    assert check._attempt(lambda: {}["missing"], cpu, None) == {"error": "failed: KeyError: 'missing'"}
