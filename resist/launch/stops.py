"""SIGTERM and SIGINT (Ctrl-C) to a launcher and its workers.

The first asks the run to stop at the next round end: each worker watches both signals
(:func:`round_end_stop`), the workers agree at the round end, write a checkpoint together and
return; the launcher, where the signals raise :class:`Interrupted`, passes the request on to its
workers and waits for them. A second signal to the launcher stops every worker at once. A run that
writes no checkpoint (``checkpoint.enabled=false``) cannot stop at a round end: the first signal
stops it at once."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import NoReturn

from resist.config import Config
from resist.launch.resuming import resume_hint
from resist.run_dir import RunDir
from resist.train.stop import StopRequest

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

GRACE_S = 5.0
"""How long torchrun, told to stop at once (SIGTERM), may take to exit before its session is killed."""


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

    previous = {s: signal.signal(s, interrupt) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def round_end_stop(cfg: Config, *, second: Callable[[int], None] | None = None) -> StopRequest:
    """A worker's stop request: SIGTERM and SIGINT stop the run at the next round end when it writes
    checkpoints (else nothing is watched: the launcher stops such a run at once). ``second``: what a
    repeated signal does (a worker in the launcher's own process stops at once; a worker process
    leaves that to its launcher)."""
    stop = StopRequest()
    if cfg.checkpoint.enabled:
        stop.watch(*STOP_SIGNALS, second=second)
    return stop


def raise_interrupted(signum: int) -> None:
    """A ``second`` for :func:`round_end_stop`: stop at once."""
    raise Interrupted(signum)


def exit_stopped(signum: int, run_dir: RunDir, *, at_once: bool, workers: int) -> NoReturn:
    """Say how the run's ``workers`` stopped and where the run continues from, and exit with 128 +
    the signal's number."""
    who = {1: "the worker"}.get(workers, f"all {workers} workers" if at_once else f"the {workers} workers")
    how = "stopped at once" if at_once else "stopped at a round end"
    print(f"resist: stopped by {signal.Signals(signum).name}: {who} {how}; {resume_hint(run_dir)}", file=sys.stderr)
    sys.exit(128 + signum)
