"""Start a validated run: pre-flight checks, the run directory, then the workers (local processes,
torchrun or a SLURM job)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping

from resist.checkpoints import CheckpointStore
from resist.comm.ports import free_port
from resist.config import Config, LauncherName
from resist.errors import WorkerFailedError
from resist.launch.env import DistEnv
from resist.launch.preflight import preflight, prepare_run_dir, resolved_device
from resist.launch.resuming import prepare_resume, resume_hint
from resist.launch.run_lock import check_not_running
from resist.launch.stops import (
    STOP_SIGNALS,
    Interrupted,
    exit_stopped,
    raise_interrupted,
    round_end_stop,
    stop_signals_raise,
)
from resist.launch.worker_process import run_worker
from resist.logging import Record
from resist.run_dir import RunDir


def continue_requeued(run_dir: RunDir, environ: Mapping[str, str]) -> bool:
    """In a requeued SLURM job (``SLURM_RESTART_COUNT`` > 0; what Hydra's submitit launcher restarts
    after a preemption) whose run directory holds its run: whether to resume it (it has a checkpoint);
    without one, its records move to ``metrics.before-restart-<n>.jsonl`` and the run starts again."""
    restarts = int(environ.get("SLURM_RESTART_COUNT", "0") or 0)
    if restarts == 0 or not run_dir.holds_run():
        return False
    if CheckpointStore(run_dir).newest() is not None:
        return True
    run_dir.metrics.rename(run_dir.metrics_before_restart(restarts))
    return False


def launch(cfg: Config, run_dir: RunDir, *, resume: bool = False) -> Record:
    """Resolve ``device=auto`` (the run records what it trains on), run the pre-flight checks, set up
    ``run_dir`` (or, with ``resume``, check the resume of the run in it), run the workers; return the
    run's summary record. A failed or interrupted run's error says where it can continue from."""
    cfg.device = resolved_device(cfg)
    preflight(cfg, run_dir, resume=resume)
    resume = resume or continue_requeued(run_dir, os.environ)  # a sweep's job SLURM requeued continues
    if resume:
        check_not_running(run_dir)
        prepare_resume(cfg, run_dir)
    else:
        prepare_run_dir(run_dir, cfg)
    try:
        return _start_workers(cfg, run_dir, resume=resume)
    except WorkerFailedError as exc:
        raise WorkerFailedError(exc.rank, exc.details, note=resume_hint(run_dir)) from None


def _start_workers(cfg: Config, run_dir: RunDir, *, resume: bool) -> Record:
    port = cfg.launcher.master_port or free_port()
    if cfg.launcher.name == LauncherName.slurm:
        from resist.launch.slurm import submit

        submit(cfg, run_dir, resume=resume)
        return run_dir.last_record() if cfg.launcher.wait else {}
    if cfg.launcher.name == LauncherName.torchrun:
        from resist.launch.torchrun import run_torchrun

        run_torchrun(run_dir, cfg.num_workers, resume=resume, stops_at_round_end=cfg.checkpoint.enabled)
        return run_dir.last_record()
    if cfg.num_workers == 1:
        return _run_in_process(cfg, run_dir, port, resume=resume)
    from resist.launch.local import spawn_workers

    spawn_workers(cfg, run_dir, port, resume=resume)
    return run_dir.last_record()


def _run_in_process(cfg: Config, run_dir: RunDir, port: int, *, resume: bool) -> Record:
    """One worker in the launcher's own process: the first SIGTERM or SIGINT stops it at the next
    round end, a second at once (:mod:`resist.launch.stops`)."""
    try:
        with contextlib.ExitStack() as restore:
            for signum in STOP_SIGNALS:  # (the handlers the launcher had before)
                restore.callback(signal.signal, signum, signal.getsignal(signum))
            stop = round_end_stop(cfg, second=raise_interrupted)
            if not stop.watching:
                restore.enter_context(stop_signals_raise())
            summary = run_worker(cfg, run_dir, DistEnv(0, 1, 0, "127.0.0.1", port, "local"), resume=resume, stop=stop)
    except Interrupted as interrupted:
        exit_stopped(interrupted.signum, run_dir, at_once=True, workers=1)
    if summary.get("event") == "stopped" and stop.signum is not None:
        exit_stopped(stop.signum, run_dir, at_once=False, workers=1)
    return summary
