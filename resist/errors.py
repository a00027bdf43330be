"""User errors and their one-line rendering.

A user error is a problem with the command line, the config or the files it names. The entries
print it as one line (``resist: error: <key>: <problem> (fix: <fix>)``) and exits with status 2,
before any worker starts. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn


class UserError(Exception):
    """Base of errors caused by the user's input; ``str()`` is one line."""


def exit_with(message: str, status: int = 2) -> NoReturn:
    """Print ``resist: error: <message>`` to stderr and exit with ``status``."""
    print(f"resist: error: {message}", file=sys.stderr)
    sys.exit(status)


class WorkerFailedError(RuntimeError):
    """A worker of a multi-worker run raised; ``details`` holds what it printed (its traceback)."""

    def __init__(self, rank: int, details: str, note: str = "") -> None:
        last = details.strip().splitlines()[-1] if details.strip() else "no message"
        message = f"worker {rank} failed: {last}" if rank >= 0 else last
        super().__init__(f"{message}; {note}" if note else message)
        self.rank, self.details, self.note = rank, details, note

    def __reduce__(self):  # picklable (submitit returns exceptions from SLURM jobs pickled)
        return (type(self), (self.rank, self.details, self.note))
