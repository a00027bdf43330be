"""What every command-line entry shares: one-line user errors and worker failures.

User errors (config, data, devices) print ``resist: error: <key>: <problem> (fix: <fix>)`` and exit
with status 2 before training starts; a failed worker prints its traceback, then one line naming
it, and exits with status 1. ``HYDRA_FULL_ERROR=1`` keeps full tracebacks instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from resist.config.hydra_door import one_line
from resist.errors import WorkerFailedError, exit_with


def run_entry(hydra_entry: Callable[[], Any]) -> None:
    """Call a ``@hydra.main`` function, rendering user errors and worker failures as above."""
    user_wants_traceback = "HYDRA_FULL_ERROR" in os.environ
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    try:
        hydra_entry()
    except WorkerFailedError as exc:
        print(exc.details, file=sys.stderr)
        exit_with(str(exc), status=1)
    except Exception as exc:
        message = None if user_wants_traceback else one_line(exc)
        if message is None:
            raise
        exit_with(message)
