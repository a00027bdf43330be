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


class PassedOnStop:
    """A launcher's side of a stop at a round end: while it waits for its workers, the first SIGTERM
    or SIGINT is passed on to them (``pass_on(signum)``) and kept in ``requested``; a second one, or
    the first when the run cannot stop at a round end (``at_round_end`` false: it writes no
    checkpoints), raises :class:`Interrupted` (stop at once)."""

    def __init__(self, pass_on: Callable[[int], None], *, at_round_end: bool) -> None:
        self.pass_on, self.at_round_end = pass_on, at_round_end
        self.requested: Interrupted | None = None

    def wait(self, done: Callable[[], bool]) -> None:
        """Call ``done()`` until it returns True (a call a signal interrupted is made again)."""
        with stop_signals_raise():
            while True:
                try:
                    if done():
                        return
                except Interrupted as interrupted:
                    if self.requested is not None or not self.at_round_end:
                        raise
                    self.requested = interrupted
                    self.pass_on(interrupted.signum)

    def exit_if_stopped(self, run_dir: RunDir, *, workers: int) -> None:
        """After the workers ended: when a stop was requested and the run had not just finished
        anyway, say so and exit (:func:`exit_stopped`)."""
        if self.requested is not None and run_dir.last_record().get("event") != "summary":
            exit_stopped(self.requested.signum, run_dir, at_once=False, workers=workers)


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
