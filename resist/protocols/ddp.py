"""Data-parallel SGD with torch's DistributedDataParallel; its gradient all-reduces are billed
through :meth:`Comm.ddp_comm_hook` (torch's default all-reduce hook, wrapped)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resist.comm import Purpose, data_parallel
from resist.protocols.base import ModelFactory, TrainingProtocol, broadcast_initial_state


class DataParallel(TrainingProtocol):
    """Every step is a round: gradients are averaged in DDP's buckets during backward.

    Initial weights are broadcast through ``Comm`` (so DDP's own initial sync is off), and
    BatchNorm running statistics, which DDP would re-broadcast from rank 0 every forward without
    billing, are instead averaged through ``Comm`` before each evaluation (billed to ``eval``).
    """

    name = "ddp"
    final_model = "the replicated model (gradients averaged every step; BatchNorm running statistics averaged)"

    def setup(self, make_model: ModelFactory, steps_per_epoch: int, state: dict[str, Any] | None = None) -> nn.Module:
        model = make_model(initialize=state is None)
        if state is None:
            broadcast_initial_state(model, self.comm)
        self.model = model
        return data_parallel(model, self.comm)

    def eval_model(self) -> nn.Module:
        buffers = [b for b in self.model.buffers() if b.is_floating_point()]
        with torch.no_grad():
            self.comm.all_reduce(buffers, Purpose.eval)
        return self.model
