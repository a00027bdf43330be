"""The protocol interface the training loop drives.

The loop owns data, forward/backward and the optimizer step; a protocol decides what the worker
trains and when and how workers synchronise. The loop never branches on the protocol.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import nn


class Protocol(ABC):
    name: str

    @abstractmethod
    def setup(self, model: nn.Module) -> nn.Module:
        """Take the freshly initialised model; return the module this worker trains."""

    def after_backward(self) -> None:
        """Called after ``loss.backward()``, before the optimizer step."""

    def after_optimizer_step(self, step: int) -> None:
        """Called after optimizer step ``step`` (1-based count of steps taken); may synchronise."""

    @abstractmethod
    def eval_model(self) -> nn.Module | None:
        """The model to evaluate now, or None on a worker that does not evaluate."""

    def state_dict(self) -> dict[str, Any]:
        """Protocol state to checkpoint beyond the model and optimizer (none by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"protocol {self.name} has no state to load, got keys {sorted(state)}")
