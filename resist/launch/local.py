"""The local launcher: one process per worker on this machine (one per GPU on CUDA)."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys

import torch.multiprocessing as mp

from resist.config import Config
from resist.errors import WorkerFailedError
from resist.launch.env import DistEnv
from resist.launch.resuming import resume_hint
from resist.launch.stops import GRACE_S, Interrupted, stop_signals_raise
from resist.launch.worker_process import run_worker
from resist.run_dir import RunDir

_PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker if the launcher dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _process_entry(
    rank: int, cfg: Config, run_dir: RunDir, port: int, resume: bool
) -> None:  # torch.multiprocessing calls fn(rank, *args)
    _die_with_parent()
    env = DistEnv(rank, cfg.num_workers, rank, "127.0.0.1", port, "local")
    run_worker(cfg, run_dir, env, resume=resume, local_workers=cfg.num_workers)


def _stop(processes: list) -> None:
    """SIGTERM every live worker, then SIGKILL those still alive after a grace period."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(GRACE_S)
        if process.is_alive():
            process.kill()
            process.join()


def spawn_workers(cfg: Config, run_dir: RunDir, port: int, *, resume: bool = False) -> None:
    """Run ``cfg.num_workers`` worker processes (``resume``: from the run's newest checkpoint) and
    wait for all of them.

    If one fails, the others are stopped and :class:`WorkerFailedError` names it, with its traceback
    (torch.multiprocessing watches the processes). SIGTERM or SIGINT to the launcher stops every
    worker (SIGTERM, then SIGKILL after 5 s) and exits with 128 + the signal's number, printing
    where the run can continue from. Workers die with the launcher even when it is killed.
    """
    context = mp.start_processes(
        _process_entry, args=(cfg, run_dir, port, resume), nprocs=cfg.num_workers, join=False, start_method="spawn"
    )
    try:
        with stop_signals_raise():
            while not context.join(timeout=0.5):
                pass
    except Interrupted as interrupted:
        _stop(context.processes)
        print(
            f"resist: stopped by {interrupted}: all {cfg.num_workers} workers stopped; {resume_hint(run_dir)}",
            file=sys.stderr,
        )
        sys.exit(128 + interrupted.signum)
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:  # (join stopped the others)
        raise WorkerFailedError(exc.error_index, str(exc)) from None
