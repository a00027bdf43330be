"""The torchrun launcher: ``torchrun --standalone`` runs ``python -m resist.worker RUN_DIR`` workers."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from resist.errors import WorkerFailedError

log = logging.getLogger("resist")


def torchrun_command(run_dir: Path, num_workers: int) -> list[str]:
    """The command that runs the prepared ``run_dir`` with ``num_workers`` workers on this machine.
    On several machines, run ``torchrun --nnodes=N --nproc-per-node=G --rdzv-endpoint=HOST:PORT
    -m resist.worker RUN_DIR`` on each instead."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={num_workers}",
        "-m",
        "resist.worker",
        str(run_dir),
    ]


def run_torchrun(run_dir: Path, num_workers: int) -> None:
    command = torchrun_command(run_dir, num_workers)
    log.info("launching: %s", " ".join(command))
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise WorkerFailedError(-1, f"torchrun exited with status {result.returncode} (see its output above)")
