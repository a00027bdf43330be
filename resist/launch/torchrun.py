"""The torchrun launcher: ``torchrun --standalone`` runs ``python -m resist.worker RUN_DIR`` workers."""

from __future__ import annotations

import logging
import subprocess
import sys

from resist.errors import WorkerFailedError
from resist.launch.resuming import resume_hint
from resist.launch.stops import GRACE_S, Interrupted, stop_signals_raise
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


def run_torchrun(run_dir: RunDir, num_workers: int, *, resume: bool = False) -> None:
    """Run torchrun and wait for it. SIGTERM or SIGINT to this launcher stop torchrun, which stops its
    workers (SIGTERM, then SIGKILL after 5 s), and exit with 128 + the signal's number."""
    command = torchrun_command(run_dir, num_workers, resume=resume)
    log.info("launching: %s", " ".join(command))
    process = subprocess.Popen(command)
    try:
        with stop_signals_raise():
            returncode = process.wait()
    except Interrupted as interrupted:
        process.terminate()
        try:
            process.wait(GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(
            f"resist: stopped by {interrupted}: torchrun and its workers stopped; {resume_hint(run_dir)}",
            file=sys.stderr,
        )
        sys.exit(128 + interrupted.signum)
    if returncode != 0:
        raise WorkerFailedError(-1, f"torchrun exited with status {returncode} (see its output above)")
