"""Start a validated run: pre-flight checks, the run directory, then the workers."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

import torch

from resist.config import Config, DeviceKind, LauncherName, save_resolved_config
from resist.data.sources import check_available
from resist.errors import UserError
from resist.launch.env import DistEnv
from resist.launch.slurm_plan import slurm_plan
from resist.launch.worker import METRICS_FILE, DeviceError, run_worker
from resist.logging import Record

log = logging.getLogger("resist")


class RunDirError(UserError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    if (run_dir / METRICS_FILE).exists():
        raise RunDirError(
            f"hydra.run.dir: {run_dir} already holds a run ({METRICS_FILE}); refusing to overwrite it "
            "(fix: choose a new hydra.run.dir or move the old run away)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved_config(run_dir, resolved)


def last_record(run_dir: Path) -> Record:
    lines = (run_dir / METRICS_FILE).read_text(encoding="utf-8").strip().splitlines()
    return json.loads(lines[-1])


def launch(cfg: Config, resolved: dict[str, Any], run_dir: Path) -> Record:
    """Check data and devices, set up ``run_dir``, run the workers; return the run's summary record."""
    on_cluster = cfg.launcher.name == LauncherName.slurm
    if on_cluster:
        slurm_plan(cfg)  # an impossible job layout is a ConfigError before anything is written
    if not (on_cluster and cfg.launcher.dry_run):
        check_available(cfg.dataset)
    if not on_cluster:  # compute nodes have their own devices; each worker checks its own
        check_devices(cfg)
    prepare_run_dir(run_dir, resolved)
    port = cfg.launcher.master_port or free_port()
    if cfg.launcher.name == LauncherName.slurm:
        from resist.launch.slurm import submit

        job = submit(cfg, run_dir)
        return last_record(run_dir) if job is not None and cfg.launcher.wait else {}
    if cfg.launcher.name == LauncherName.torchrun:
        from resist.launch.torchrun import run_torchrun

        run_torchrun(run_dir, cfg.num_workers)
        return last_record(run_dir)
    if cfg.num_workers == 1:
        return run_worker(cfg, run_dir, DistEnv(0, 1, 0, "127.0.0.1", port, "local"))
    from resist.launch.local import spawn_workers

    spawn_workers(cfg, run_dir, port)
    return last_record(run_dir)
