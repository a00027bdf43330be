"""SIGTERM and SIGINT to a launcher: while its workers run, they raise :class:`Interrupted`, so the
launcher can stop every worker before it exits instead of leaving them running."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

GRACE_S = 5.0
"""How long a worker told to stop (SIGTERM) may take to exit before it is killed (SIGKILL)."""


class Interrupted(BaseException):
    """The launcher was asked to stop (SIGTERM or SIGINT); ``signum`` is the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While open, SIGTERM and SIGINT to this process raise :class:`Interrupted`."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
