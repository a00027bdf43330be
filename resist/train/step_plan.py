"""The run's schedule in optimizer steps (pure): the one place its length, its rounds and its
learning-rate horizon are computed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resist.config import EvalUnit, OptimConfig, TrainConfig
from resist.train.schedule import lr_at


def total_steps(train: TrainConfig, steps_per_epoch: int) -> int:
    """How many optimizer steps each worker takes: ``train.epochs`` epochs, at most ``train.max_steps``."""
    total = train.epochs * steps_per_epoch
    return total if train.max_steps is None else min(total, train.max_steps)


def rounds_in(steps: int, steps_per_round: int) -> int:
    """How many rounds of ``steps_per_round`` steps ``steps`` optimizer steps begin (the last may be
    shorter): the index of the round the next step starts when ``steps`` ends a round."""
    return -(-steps // steps_per_round)


def saved_schedule(manifest: Mapping[str, Any], total_steps: int) -> tuple[int, int]:
    """The length of the run that wrote a checkpoint and its learning-rate schedule's horizon, as its
    ``manifest`` records them; a checkpoint written before they were recorded reads as a run of
    ``total_steps`` (the resuming run's length) on its own schedule."""
    saved_total = manifest.get("total_steps", total_steps)
    return saved_total, manifest.get("schedule_steps", saved_total)


@dataclass(frozen=True)
class StepPlan:
    """The run's schedule in optimizer steps: its length, its rounds, when it logs and evaluates, and
    the learning rate of each step.

    A round is ``steps_per_round`` steps (the last may be shorter); logging and evaluation happen at
    round ends, at the first one at or after each multiple of their interval, and at the end.
    ``schedule_steps`` is the learning-rate schedule's horizon: ``total_steps``, except in a finished
    run that a resume extended, whose schedule keeps the horizon of the run that first finished it
    (the checkpoint records it); steps past the horizon keep the learning rate of its last step.
    """

    steps_per_epoch: int
    total_steps: int
    steps_per_round: int
    eval_every_steps: int
    log_every_steps: int
    schedule_steps: int

    @classmethod
    def from_config(cls, train: TrainConfig, *, steps_per_epoch: int, steps_per_round: int) -> StepPlan:
        """The plan of ``train``, its schedule's horizon its length (a resume replaces it with the
        checkpoint's)."""
        total = total_steps(train, steps_per_epoch)
        unit = {EvalUnit.steps: 1, EvalUnit.epochs: steps_per_epoch, EvalUnit.rounds: steps_per_round}
        return cls(
            steps_per_epoch=steps_per_epoch,
            total_steps=total,
            steps_per_round=steps_per_round,
            eval_every_steps=train.eval_every * unit[train.eval_unit],
            log_every_steps=train.log_every_steps,
            schedule_steps=total,
        )

    def lr_at(self, step: int, optim: OptimConfig) -> float:
        """The learning rate of optimizer step ``step`` (0-based): the schedule's over ``schedule_steps``
        steps, and past them the learning rate of the schedule's last step."""
        return lr_at(min(step, self.schedule_steps - 1), self.schedule_steps, optim)

    @property
    def num_rounds(self) -> int:
        return rounds_in(self.total_steps, self.steps_per_round)

    def rounds_done(self, steps_done: int) -> int:
        """The rounds begun in the first ``steps_done`` steps (:func:`rounds_in`)."""
        return rounds_in(steps_done, self.steps_per_round)

    def starts_round(self, step: int) -> bool:
        """Whether optimizer step ``step`` (0-based) is the first of a round."""
        return step % self.steps_per_round == 0

    def ends_round(self, steps_done: int) -> bool:
        return steps_done % self.steps_per_round == 0 or steps_done == self.total_steps

    def _due(self, steps_done: int, every: int) -> bool:
        previous_round_end = (steps_done - 1) // self.steps_per_round * self.steps_per_round
        return steps_done // every > previous_round_end // every or steps_done == self.total_steps

    def logs_after(self, steps_done: int) -> bool:
        """Whether the round ending after ``steps_done`` steps writes a train record."""
        return self._due(steps_done, self.log_every_steps)

    def checkpoints_after(self, steps_done: int, every_rounds: int) -> bool:
        """Whether the round ending after ``steps_done`` steps saves a checkpoint: every
        ``every_rounds`` rounds (0: never) and at the end."""
        return steps_done == self.total_steps or (every_rounds > 0 and self.rounds_done(steps_done) % every_rounds == 0)

    def evaluates_after(self, steps_done: int) -> bool:
        """Whether the round ending after ``steps_done`` steps evaluates."""
        return self._due(steps_done, self.eval_every_steps)
