"""Progress lines for runs without a progress bar (SLURM logs, nohup, CI): rank 0 logs
``step 120/960 (epoch 1.25/8): loss 0.412, 1,234 images/s, ETA 5m12s`` at the first step and then
at most once every ``logger.progress_every_s`` seconds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import torch

from resist.config import Config
from resist.logging.console import shows_bar

log = logging.getLogger("resist")


class _Worker(Protocol):  # a Comm's position
    rank: int
    size: int


class _Plan(Protocol):  # a StepPlan's length
    total_steps: int
    steps_per_epoch: int


class ProgressLine:
    """Call :meth:`step` after every optimizer step. When ``enabled``, it logs a line (to the
    ``resist`` logger) at the first step and whenever ``every_s`` seconds have passed since the
    previous line: the step, the epoch, rank 0's mean training loss over the steps since the previous
    line, the images per second of all workers over that interval (``global_batch`` per step) and the
    ETA at that rate. Cheap between lines: no device synchronisation, one addition on the device."""

    def __init__(
        self,
        *,
        total_steps: int,
        steps_per_epoch: int,
        global_batch: int,
        every_s: float,
        enabled: bool,
        start_step: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_steps, self.steps_per_epoch, self.global_batch = total_steps, steps_per_epoch, global_batch
        self.every_s, self.enabled, self.clock = every_s, enabled, clock
        self._last_time = clock()
        self._last_step = start_step  # a resumed run starts later
        self._printed = False
        self._loss_sum: torch.Tensor | None = None

    @classmethod
    def for_run(cls, cfg: Config, worker: _Worker, plan: _Plan, *, start_step: int = 0) -> ProgressLine:
        """The progress line of ``worker`` (a Comm) training ``plan`` from ``start_step``: enabled on
        rank 0 when no progress bar is shown (:func:`~resist.logging.console.shows_bar`)."""
        return cls(
            start_step=start_step,
            total_steps=plan.total_steps,
            steps_per_epoch=plan.steps_per_epoch,
            global_batch=cfg.train.batch_size * worker.size,
            every_s=cfg.logger.progress_every_s,
            enabled=worker.rank == 0 and not shows_bar(cfg.logger.progress),
        )

    def step(self, steps_done: int, loss: torch.Tensor) -> None:
        """Account the step that brought the run to ``steps_done`` steps, with its (detached) loss."""
        if not self.enabled:
            return
        loss = loss.detach().float()
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        now = self.clock()
        if self._printed and now - self._last_time < self.every_s:
            return
        log.info(self.line(steps_done, self._loss_sum.item() / (steps_done - self._last_step), now - self._last_time))
        self._printed, self._last_time, self._last_step, self._loss_sum = True, now, steps_done, None

    def line(self, steps_done: int, loss: float, seconds: float) -> str:
        """The line at ``steps_done``, ``seconds`` after the previous line (or the start)."""
        epochs = self.total_steps / self.steps_per_epoch
        text = (
            f"step {steps_done}/{self.total_steps} (epoch {steps_done / self.steps_per_epoch:.2f}/"
            f"{_number(epochs)}): loss {loss:.3f}"
        )
        if seconds <= 0:
            return text
        steps_per_s = (steps_done - self._last_step) / seconds
        eta = (self.total_steps - steps_done) / steps_per_s
        return f"{text}, {steps_per_s * self.global_batch:,.0f} images/s, ETA {duration(eta)}"


def _number(value: float) -> str:
    """``8``, ``0.25``, ``1.33``: at most two decimals, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def duration(seconds: float) -> str:
    """``42s``, ``5m12s``, ``2h03m``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
