"""One worker, no communication: plain SGD on the whole model."""

from __future__ import annotations

from typing import Any

from torch import nn

from resist.protocols.base import ModelFactory, TrainingProtocol


class SingleWorker(TrainingProtocol):
    name = "none"
    final_model = "the single worker's model"

    def setup(self, make_model: ModelFactory, steps_per_epoch: int, state: dict[str, Any] | None = None) -> nn.Module:
        self.model = make_model()
        return self.model

    def eval_model(self) -> nn.Module:
        return self.model
