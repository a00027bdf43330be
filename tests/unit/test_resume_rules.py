"""What a resume may change, checked before any worker starts: a stopped run's length (refused), a
finished run's (extended on its schedule), the device (resolved before the run records it; CUDA
without a GPU refused, with the fix); the resolved config is rewritten atomically; what a resume on
another platform changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from resist.checkpoints import CheckpointError, CheckpointStore
from resist.config import Config, DeviceKind, LauncherName, plain
from resist.config.hydra_door import load_resolved_config, save_resolved_config
from resist.config.resume_rules import trajectory
from resist.launch.preflight import check_devices, resolved_device
from resist.launch.resuming import prepare_resume, resume_checkpoint
from resist.launch.worker_process import DeviceError
from resist.run_dir import RunDir
from resist.train.platform import platform_changes

STEPS_PER_EPOCH = 6


def _config(*, epochs: int = 2, max_steps: int | None = None) -> Config:
    cfg = Config()
    cfg.train.epochs, cfg.train.max_steps = epochs, max_steps
    return cfg


def _checkpoint(run_dir, *, step: int, total: int | None, schedule: int | None = None) -> None:
    """A one-worker checkpoint of ``_config()``'s trajectory at ``step`` of a ``total``-step run
    (None: a manifest written before the length was recorded)."""
    store = CheckpointStore(RunDir(run_dir))
    store.write_shard(step, 0, {"step": step})
    facts = {"config": trajectory(plain(_config())), "steps_per_epoch": STEPS_PER_EPOCH, "metrics_bytes": 0}
    if total is not None:
        facts |= {"total_steps": total, "schedule_steps": schedule or total}
    store.commit(step, world_size=1, facts=facts)


def test_a_stopped_run_resumes_with_its_length_only(tmp_path):
    _checkpoint(tmp_path, step=6, total=12)
    assert resume_checkpoint(_config(epochs=2), RunDir(tmp_path)).step == 6  # the same 12 steps
    assert resume_checkpoint(_config(epochs=9, max_steps=12), RunDir(tmp_path)).step == 6  # 12 steps, said otherwise
    with pytest.raises(CheckpointError) as refused:
        resume_checkpoint(_config(epochs=4), RunDir(tmp_path))
    assert str(refused.value) == (
        "resume: the run stopped at step 6 of 12 and train.epochs/train.max_steps now make it 24 steps, which "
        f"would change the learning rate of the steps it has left (fix: resume={tmp_path} without changing "
        "its length, let it finish, then extend it)"
    )
    with pytest.raises(CheckpointError, match="the run stopped at step 6 of 12 .* now make it 8 steps"):
        resume_checkpoint(_config(max_steps=8), RunDir(tmp_path))


def test_a_finished_run_is_extended_and_never_shortened(tmp_path):
    _checkpoint(tmp_path, step=12, total=12)
    assert resume_checkpoint(_config(epochs=4), RunDir(tmp_path)).step == 12
    with pytest.raises(
        CheckpointError, match=r"^resume: the run is complete \(its newest checkpoint is at step 12 of 12"
    ):
        resume_checkpoint(_config(epochs=2), RunDir(tmp_path))
    with pytest.raises(CheckpointError, match="the run is complete .* at step 12 of 6"):
        resume_checkpoint(_config(epochs=1), RunDir(tmp_path))


def test_an_extended_run_stopped_before_its_new_end_keeps_that_length(tmp_path):
    _checkpoint(tmp_path, step=18, total=24, schedule=12)
    assert resume_checkpoint(_config(epochs=4), RunDir(tmp_path)).step == 18
    with pytest.raises(CheckpointError, match="stopped at step 18 of 24 .* now make it 36 steps"):
        resume_checkpoint(_config(epochs=6), RunDir(tmp_path))


def test_a_checkpoint_that_records_no_length_resumes_with_the_configured_one(tmp_path):
    _checkpoint(tmp_path, step=6, total=None)
    assert resume_checkpoint(_config(epochs=4), RunDir(tmp_path)).step == 6


def test_the_resolved_config_is_replaced_atomically(tmp_path, monkeypatch):
    """A crash while the resume writes the new config (here: the fsync fails) leaves the old one whole,
    and no temporary file."""
    _checkpoint(tmp_path, step=6, total=12)
    old, new = _config(), _config()
    old.checkpoint.keep, new.checkpoint.keep = 3, 5
    save_resolved_config(RunDir(tmp_path), old)
    before = (tmp_path / "resolved_config.yaml").read_bytes()

    def power_failure(descriptor: int) -> None:
        raise OSError("power failure")

    monkeypatch.setattr(os, "fsync", power_failure)
    with pytest.raises(OSError, match="power failure"):
        prepare_resume(new, RunDir(tmp_path))
    assert (tmp_path / "resolved_config.yaml").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoints",
        "resolved_config.1.yaml",
        "resolved_config.yaml",
    ]
    monkeypatch.undo()
    prepare_resume(new, RunDir(tmp_path))
    assert load_resolved_config(RunDir(tmp_path))["checkpoint"]["keep"] == 5
    assert (tmp_path / "resolved_config.1.yaml").read_bytes() == before
    old.checkpoint.keep = 7  # every replaced config is kept, none overwritten (the crashed try's too)
    prepare_resume(old, RunDir(tmp_path))
    assert load_resolved_config(RunDir(tmp_path))["checkpoint"]["keep"] == 7
    kept = [yaml.safe_load((tmp_path / f"resolved_config.{n}.yaml").read_text()) for n in (1, 2, 3)]
    assert [config["checkpoint"]["keep"] for config in kept] == [3, 3, 5]


def test_auto_is_resolved_to_the_device_the_workers_train_on():
    cfg = Config()
    assert cfg.device == DeviceKind.auto
    assert resolved_device(cfg) == (DeviceKind.cuda if torch.cuda.is_available() else DeviceKind.cpu)
    cfg.launcher.name = LauncherName.slurm  # the compute nodes' devices: what the job asks for
    assert resolved_device(cfg) == DeviceKind.cpu
    cfg.launcher.gpus_per_node = 4
    assert resolved_device(cfg) == DeviceKind.cuda
    cfg.device = DeviceKind.cpu
    assert resolved_device(cfg) == DeviceKind.cpu


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a host without CUDA")
def test_a_cuda_run_resumed_without_a_gpu_names_the_explicit_request():
    cfg = Config()
    cfg.device = DeviceKind.cuda
    with pytest.raises(DeviceError) as refused:
        check_devices(cfg, resuming=RunDir(Path("runs/default/x")))
    assert str(refused.value) == (
        "device: the run being resumed trains on cuda and no CUDA GPU is visible (fix: resume it on a host with "
        "one, or continue it on the CPU with resume=runs/default/x device=cpu, after which it is no longer "
        "bitwise equal to an uninterrupted run)"
    )


def test_what_a_resume_on_another_platform_changes():
    saved = {
        "platform/device": "cuda",
        "platform/torch": "2.5.1",
        "platform/threads_per_worker": 8,
        "platform/cpu_capability": "AVX512",
        "platform/host_cpus": 64,
        "platform/gpu": "NVIDIA H100",
    }
    assert platform_changes(saved, {**saved, "platform/host_cpus": 32}) == []  # not a bitwise fact
    now = {**saved, "platform/device": "cpu", "platform/threads_per_worker": 4, "platform/cpu_capability": "AVX2"}
    del now["platform/gpu"]
    assert platform_changes(saved, now) == [
        "platform/device: cuda -> cpu",
        "platform/cpu_capability: AVX512 -> AVX2",
        "platform/threads_per_worker: 8 -> 4",
        "platform/gpu: NVIDIA H100 -> None",
    ]
