"""One live process per run directory: rank 0 holds an exclusive lock on ``<run dir>/.lock`` while it
trains, so a second ``resume=`` of a run that is still running is refused instead of cutting its
metrics and sharing its checkpoints. (``flock``: local filesystems and most cluster filesystems; the
lock is released by the kernel when the holder dies, so a killed run never stays locked.)"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator

from resist.errors import UserError
from resist.run_dir import RunDir


class RunInUseError(UserError):
    pass


def _in_use(run_dir: RunDir) -> RunInUseError:
    holder = run_dir.lock.read_text(encoding="utf-8").strip() or "another process"
    return RunInUseError(
        f"resume: {run_dir} is in use by a running process ({holder}) (fix: wait for it to end, or stop it first)"
    )


@contextlib.contextmanager
def holding_run(run_dir: RunDir) -> Iterator[None]:
    """Hold ``run_dir``'s lock (writing this process's pid and host into it) until the block ends;
    raises :class:`RunInUseError` naming the holder when another process has it."""
    fd = os.open(run_dir.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _in_use(run_dir) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        yield
    finally:
        os.close(fd)


def check_not_running(run_dir: RunDir) -> None:
    """Raise :class:`RunInUseError` when a process holds ``run_dir``'s lock (writes nothing)."""
    path = run_dir.lock
    if not path.exists():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(run_dir) from None
    finally:
        os.close(fd)
