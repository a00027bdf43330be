"""The local launcher: one process per worker on this machine (one per GPU on CUDA)."""

from __future__ import annotations

from pathlib import Path

import torch.multiprocessing as mp

from resist.config import Config
from resist.errors import WorkerFailedError
from resist.launch.env import DistEnv
from resist.launch.worker import run_worker


def _process_entry(
    rank: int, cfg: Config, run_dir: Path, port: int
) -> None:  # torch.multiprocessing calls fn(rank, *args)
    env = DistEnv(rank, cfg.num_workers, rank, "127.0.0.1", port, "local")
    run_worker(cfg, run_dir, env, local_workers=cfg.num_workers)


def spawn_workers(cfg: Config, run_dir: Path, port: int) -> None:
    """Run ``cfg.num_workers`` worker processes and wait for all of them.

    If one raises, the others are terminated and :class:`WorkerFailedError` names it, with its
    traceback (torch.multiprocessing's ``start_processes`` watches the processes).
    """
    try:
        mp.start_processes(
            _process_entry, args=(cfg, run_dir, port), nprocs=cfg.num_workers, join=True, start_method="spawn"
        )
    except mp.ProcessRaisedException as exc:
        raise WorkerFailedError(exc.error_index, str(exc)) from None
    except mp.ProcessExitedException as exc:
        raise WorkerFailedError(exc.error_index, str(exc)) from None
