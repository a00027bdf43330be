"""Stopping a run at a round end when it is told to stop (Ctrl-C or SIGTERM to a local or torchrun
launcher, SLURM preemption or time limit).

A signal handler only sets a flag: nothing is saved from inside a handler, where the training step it
interrupted is half done. At every round end each worker contributes its flag to one all-reduce
(billed to ``control``), so all workers see the same decision at the same step; they then write a
checkpoint together and stop. Only runs that can stop this way (those that write checkpoints) pay
for the vote (a one-element all-reduce per round).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

import torch

from resist.comm import Comm, Purpose


class StopRequest:
    """A stop asked for by a signal (``watch``), agreed on by all workers at round ends (``agreed``)."""

    def __init__(self) -> None:
        self.watching = False
        self.signal_name: str | None = None
        self.signum: int | None = None
        self._second: Callable[[int], None] | None = None

    def watch(self, *signals: signal.Signals, second: Callable[[int], None] | None = None) -> None:
        """Turn ``signals`` into a stop request at the next round end (replacing their handlers).
        ``second``: called with the signal's number when one comes after the request (e.g. to stop
        at once); without it a repeated signal changes nothing."""
        self.watching, self._second = True, second
        for signum in signals:
            signal.signal(signum, self.request)

    def request(self, signum: int, frame: FrameType | None = None) -> None:
        if self.signum is not None and self._second is not None:
            self._second(signum)
            return
        if self.signum is None:
            self.signal_name, self.signum = signal.Signals(signum).name, signum

    def agreed(self, comm: Comm) -> bool:
        """Whether any worker was asked to stop (every worker gets the same answer). Free when no
        signal is watched."""
        if not self.watching:
            return False
        flag = torch.tensor([1.0 if self.signal_name else 0.0], device=comm.device)
        comm.all_reduce([flag], Purpose.control, average=False)
        return bool(flag.item() > 0)
