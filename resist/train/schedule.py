"""Learning-rate schedules as pure functions of the step."""

from __future__ import annotations

import bisect
import math

from resist.config import OptimConfig, ScheduleName


def lr_at(step: int, total_steps: int, optim: OptimConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of a ``total_steps`` run.

    ``step``: ``lr · gamma^k`` where k counts the milestones m with ``step >= floor(m · total_steps)``
    (the paper: ×0.1 from 50 %, ×0.01 from 75 % of training); ``cosine``: ``lr · ½(1 + cos(π·step/total))``;
    ``constant``: ``lr``.
    """
    if not 0 <= step < total_steps:
        raise ValueError(f"step {step} is outside 0..{total_steps - 1}")
    if optim.schedule == ScheduleName.constant:
        return optim.lr
    if optim.schedule == ScheduleName.cosine:
        return optim.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    boundaries = [math.floor(m * total_steps) for m in optim.milestones]
    return optim.lr * optim.gamma ** bisect.bisect_right(boundaries, step)
