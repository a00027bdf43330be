"""What a resume changes, through the command line: a finished run extended keeps the learning rate of
its schedule's last step, a stopped run's length is not changed, and a CUDA run continues on the CPU
only when asked, saying that it is no longer bitwise equal to an uninterrupted run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from resist.checkpoints import CheckpointStore
from resist.run_dir import RunDir
from tests.conftest import run_cli, run_main_in_process

pytestmark = pytest.mark.slow

# 2 workers of local SGD, 20 steps each in 2 rounds of 10, a checkpoint after each; train records every 10 steps.
BASE = ("protocol=local_sgd", "train.max_steps=20", "checkpoint.every_rounds=1", "launcher.threads_per_worker=1")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    result = run_cli(*BASE, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _files(root: Path) -> dict[str, bytes]:
    """Every file of a run but Hydra's record of each command and the log."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".hydra" not in p.parts and p.name != "run.log"
    }


def test_a_finished_run_extended_keeps_the_rate_of_its_last_scheduled_step(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert yaml.safe_load((run / "resolved_config.yaml").read_text())["device"] == device  # auto, resolved
    assert _records(run)[0]["platform/device"] == device

    result = run_cli(f"resume={run}", "train.max_steps=40")
    assert result.returncode == 0, result.stderr[-2000:]
    records = _records(run)
    resume = next(r for r in records if r["event"] == "resume")
    facts = ("step", "previous_total_steps", "total_steps", "schedule_steps", "bitwise", "platform_changes")
    assert {k: resume[k] for k in facts} == {
        "step": 20,
        "previous_total_steps": 20,
        "total_steps": 40,
        "schedule_steps": 20,
        "bitwise": True,
        "platform_changes": [],
    }
    rates = {r["step"]: r["lr"] for r in records if r["event"] == "train"}
    assert rates[10] == 0.05 and rates[20] == pytest.approx(0.0005, rel=1e-12)  # the 20-step schedule's last
    assert rates == {10: rates[10], 20: rates[20], 30: rates[20], 40: rates[20]}  # not 0.005 at step 30
    assert records[-1]["event"] == "summary" and records[-1]["step"] == 40
    assert "resumed at step 20 of 40 from" in result.stderr
    assert "steps past 20 keep the learning rate of step 20" in result.stderr


def test_a_stopped_run_is_not_resumed_with_another_length(finished_run, tmp_path, monkeypatch):
    run = _copy(finished_run, tmp_path)
    shutil.rmtree(CheckpointStore(RunDir(run)).step_dir(20))  # as if stopped after step 10
    before = _files(run)
    status, _, stderr = run_main_in_process([f"resume={run}", "train.max_steps=40"], monkeypatch)
    assert status == 2, stderr
    assert stderr.strip() == (
        "resist: error: resume: the run stopped at step 10 of 20 and train.epochs/train.max_steps now make it "
        "40 steps, which would change the learning rate of the steps it has left (fix: "
        f"resume={run} without changing its length, let it finish, then extend it)"
    )
    assert _files(run) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a host without CUDA")
def test_a_cuda_run_continues_on_the_cpu_only_when_asked_and_says_it_is_no_longer_bitwise(
    finished_run, tmp_path, monkeypatch
):
    run = _copy(finished_run, tmp_path)
    config = run / "resolved_config.yaml"
    config.write_text(config.read_text().replace("device: cpu", "device: cuda"))
    checkpoint = CheckpointStore(RunDir(run)).newest()  # as if written on a GPU
    gpu = {"platform/device": "cuda", "platform/gpu": "NVIDIA H100 80GB HBM3"}
    manifest = dict(checkpoint.manifest, platform={**checkpoint.manifest["platform"], **gpu})
    (checkpoint.directory / "manifest.json").write_text(json.dumps(manifest))

    before = _files(run)
    status, _, stderr = run_main_in_process([f"resume={run}", "train.max_steps=30"], monkeypatch)
    assert status == 2, stderr
    assert stderr.strip() == (
        "resist: error: device: the run being resumed trains on cuda and no CUDA GPU is visible (fix: resume it "
        f"on a host with one, or continue it on the CPU with resume={run} device=cpu, after which it is no "
        "longer bitwise equal to an uninterrupted run)"
    )
    assert _files(run) == before

    result = run_cli(f"resume={run}", "train.max_steps=30", "device=cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    resume = next(r for r in _records(run) if r["event"] == "resume")
    assert resume["bitwise"] is False and resume["platform/device"] == "cpu"
    assert resume["platform_changes"] == ["platform/device: cuda -> cpu", "platform/gpu: NVIDIA H100 80GB HBM3 -> None"]
    assert "this resume is no longer bitwise equal to an uninterrupted run" in result.stderr
    assert yaml.safe_load(config.read_text())["device"] == "cpu"
    assert yaml.safe_load((run / "resolved_config.1.yaml").read_text())["device"] == "cuda"
