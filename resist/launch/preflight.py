"""Pre-flight checks of a validated run, before any worker starts: the data is there, the devices
are there, the SLURM layout is possible, and the run directory holds no run (never overwritten)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from resist.config import Config, DeviceKind, LauncherName, save_resolved_config
from resist.data.sources import check_available
from resist.errors import UserError
from resist.launch.slurm_plan import slurm_plan
from resist.launch.worker import DeviceError
from resist.run_dir import RunDir


class RunDirError(UserError):
    pass


def check_devices(cfg: Config) -> None:
    """Fail before any worker starts when the requested devices are not there."""
    if cfg.device == DeviceKind.cuda and not torch.cuda.is_available():
        raise DeviceError("device: device=cuda but no CUDA GPU is visible (fix: use device=cpu or device=auto)")
    uses_cuda = cfg.device != DeviceKind.cpu and torch.cuda.is_available()
    if uses_cuda and cfg.num_workers > torch.cuda.device_count():
        raise DeviceError(
            f"num_workers: {cfg.num_workers} workers need one GPU each, {torch.cuda.device_count()} "
            "visible (fix: fewer workers, device=cpu, or a cluster launcher)"
        )
    if not uses_cuda and cfg.train.amp.value == "fp16":
        raise DeviceError("train.amp: fp16 needs CUDA (fix: use train.amp=bf16 on CPU, or device=cuda)")


def prepare_run_dir(run_dir: Path, resolved: dict[str, Any]) -> None:
    """Create ``run_dir`` and write ``resolved_config.yaml``; refuse a directory that holds a run."""
    if RunDir(run_dir).holds_run():
        raise RunDirError(
            f"hydra.run.dir: {run_dir} already holds a run ({RunDir(run_dir).metrics.name}); refusing to overwrite it "
            "(fix: choose a new hydra.run.dir or move the old run away)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved_config(run_dir, resolved)


def preflight(cfg: Config) -> None:
    """Every check that can fail before anything is written (a ``UserError`` names the problem)."""
    on_cluster = cfg.launcher.name == LauncherName.slurm
    if on_cluster:
        slurm_plan(cfg)  # an impossible job layout is a ConfigError
    if not (on_cluster and cfg.launcher.dry_run):
        check_available(cfg.dataset)
    if not on_cluster:  # compute nodes have their own devices; each worker checks its own
        check_devices(cfg)
