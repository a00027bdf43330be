"""One worker, no communication: plain SGD on the whole model."""

from __future__ import annotations

from typing import Any

from torch import nn

from resist.protocols.base import ModelFactory, TrainingProtocol, build_replica


class SingleWorker(TrainingProtocol):
    name = "none"
    final_model = "the single worker's model"

    def setup(self, make_model: ModelFactory, steps_per_epoch: int, state: dict[str, Any] | None = None) -> nn.Module:
        self.model = build_replica(make_model, self.comm, restoring=state is not None, agreed=None)
        return self.model

    def eval_model(self) -> nn.Module:
        return self.model
