"""Start a validated run: pre-flight checks, the run directory, then the workers (local processes,
torchrun or a SLURM job)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from resist.config import Config, LauncherName
from resist.launch.env import DistEnv
from resist.launch.preflight import preflight, prepare_run_dir
from resist.launch.worker import run_worker
from resist.logging import Record
from resist.run_dir import RunDir


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def last_record(run_dir: Path) -> Record:
    lines = RunDir(run_dir).metrics.read_text(encoding="utf-8").strip().splitlines()
    return json.loads(lines[-1])


def launch(cfg: Config, resolved: dict[str, Any], run_dir: Path) -> Record:
    """Run the pre-flight checks, set up ``run_dir``, run the workers; return the run's summary record."""
    preflight(cfg)
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
