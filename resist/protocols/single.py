"""One worker, no communication: plain SGD on the whole model."""

from __future__ import annotations

from torch import nn

from resist.protocols.base import Protocol


class SingleWorker(Protocol):
    name = "none"

    def setup(self, model: nn.Module) -> nn.Module:
        self.model = model
        return model

    def eval_model(self) -> nn.Module:
        return self.model
