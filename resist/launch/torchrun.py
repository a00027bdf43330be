"""The torchrun launcher: ``torchrun --standalone`` runs ``python -m resist.worker RUN_DIR`` workers."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

from resist.errors import WorkerFailedError
from resist.launch.stops import GRACE_S, Interrupted, PassedOnStop, exit_stopped
from resist.run_dir import RunDir

log = logging.getLogger("resist")


def torchrun_command(run_dir: RunDir, num_workers: int, *, resume: bool = False) -> list[str]:
    """The command that runs the prepared ``run_dir`` with ``num_workers`` workers on this machine
    (``resume``: from its newest checkpoint). On several machines, run ``torchrun --nnodes=N
    --nproc-per-node=G --rdzv-endpoint=HOST:PORT -m resist.worker [--resume] RUN_DIR`` on each instead."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={num_workers}",
        "-m",
        "resist.worker",
        *(["--resume"] if resume else []),
        str(run_dir),
    ]


def run_torchrun(run_dir: RunDir, num_workers: int, *, resume: bool = False, stops_at_round_end: bool = True) -> None:
    """Run torchrun and wait for it. torchrun and its workers run in a session of their own, so a
    terminal's Ctrl-C reaches only this launcher: the first SIGTERM or SIGINT is passed on to torchrun
    as SIGTERM, which passes it to the workers, and they stop at the next round end after a checkpoint
    (``stops_at_round_end``: the run writes checkpoints; torchrun gives them 30 s before it kills
    them). A second signal, or the first for a run without checkpoints, stops torchrun and its
    workers at once (SIGTERM, then SIGKILL after 5 s). Either way the launcher prints where the run
    continues from and exits with 128 + the signal's number."""
    command = torchrun_command(run_dir, num_workers, resume=resume)
    log.info("launching: %s", " ".join(command))
    process = subprocess.Popen(command, start_new_session=True)
    stops = PassedOnStop(lambda signum: process.terminate(), at_round_end=stops_at_round_end)
    try:
        stops.wait(lambda: process.wait() is not None)
    except Interrupted as interrupted:
        process.terminate()
        try:
            process.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # torchrun and the workers of its session
            process.wait()
        exit_stopped(interrupted.signum, run_dir, at_once=True, workers=num_workers)
    stops.exit_if_stopped(run_dir, workers=num_workers)
    if process.returncode != 0:
        raise WorkerFailedError(-1, f"torchrun exited with status {process.returncode} (see its output above)")
