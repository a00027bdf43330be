"""The local launcher: one process per worker on this machine (one per GPU on CUDA)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

import torch.multiprocessing as mp

from resist.config import Config
from resist.errors import WorkerFailedError
from resist.launch.env import DistEnv
from resist.launch.stops import Interrupted, PassedOnStop, exit_stopped, round_end_stop
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
    stop = round_end_stop(cfg)  # a repeated signal is the launcher's to act on
    env = DistEnv(rank, cfg.num_workers, rank, "127.0.0.1", port, "local")
    run_worker(cfg, run_dir, env, resume=resume, local_workers=cfg.num_workers, stop=stop)


def _kill(processes: list) -> None:
    """SIGKILL every live worker and wait for it."""
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join()


def _ask_to_stop(processes: list, signum: int) -> None:
    """Pass a stop request on to every live worker (one that already has it keeps it)."""
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signum)


def spawn_workers(cfg: Config, run_dir: RunDir, port: int, *, resume: bool = False) -> None:
    """Run ``cfg.num_workers`` worker processes (``resume``: from the run's newest checkpoint) and
    wait for all of them.

    If one fails, the others are stopped and :class:`WorkerFailedError` names it, with its traceback
    (torch.multiprocessing watches the processes). SIGTERM or SIGINT to the launcher asks the workers
    to stop at the next round end, after a checkpoint (:mod:`resist.launch.stops`); a second one, or
    the first for a run without checkpoints, kills them at once. Either way the launcher prints where
    the run continues from and exits with 128 + the signal's number. Workers die with the launcher
    even when it is killed.
    """
    context = mp.start_processes(
        _process_entry, args=(cfg, run_dir, port, resume), nprocs=cfg.num_workers, join=False, start_method="spawn"
    )
    stops = PassedOnStop(lambda signum: _ask_to_stop(context.processes, signum), at_round_end=cfg.checkpoint.enabled)
    try:
        stops.wait(lambda: context.join(timeout=0.5))
    except Interrupted as interrupted:
        _kill(context.processes)
        exit_stopped(interrupted.signum, run_dir, at_once=True, workers=cfg.num_workers)
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:  # (join stopped the others)
        if stops.requested is not None:  # a worker the request reached before it could take it (starting up)
            exit_stopped(stops.requested.signum, run_dir, at_once=True, workers=cfg.num_workers)
        raise WorkerFailedError(exc.error_index, str(exc)) from None
    stops.exit_if_stopped(run_dir, workers=cfg.num_workers)
