"""Data-parallel SGD with torch's DistributedDataParallel; its gradient all-reduces are billed
through :meth:`Comm.ddp_comm_hook` (torch's default all-reduce hook, wrapped)."""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from resist.comm import Purpose
from resist.protocols.base import ModelFactory, Protocol, broadcast_initial_state


class DataParallel(Protocol):
    """Every step is a round: gradients are averaged in DDP's buckets during backward.

    Initial weights are broadcast through ``Comm`` (so DDP's own initial sync is off), and
    BatchNorm running statistics, which DDP would re-broadcast from rank 0 every forward without
    billing, are instead averaged through ``Comm`` before each evaluation (billed to ``eval``).
    """

    name = "ddp"
    final_model = "the replicated model (gradients averaged every step; BatchNorm running statistics averaged)"

    def setup(self, make_model: ModelFactory, steps_per_epoch: int) -> nn.Module:
        model = make_model()
        broadcast_initial_state(model, self.comm)
        self.model = model
        device_ids = [self.comm.device] if self.comm.device.type == "cuda" else None
        with warnings.catch_warnings():
            # broadcast_buffers=False is the only way to keep DDP from moving buffers itself (unbilled);
            # its announced replacement, forward_sync_buffers=False, still syncs them at construction.
            warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
            ddp = DistributedDataParallel(
                model, device_ids=device_ids, process_group=self.comm.group, init_sync=False, broadcast_buffers=False
            )
        ddp.register_comm_hook(state=None, hook=self.comm.ddp_comm_hook(Purpose.train_sync))
        return ddp

    def eval_model(self) -> nn.Module:
        buffers = [b for b in self.model.buffers() if b.is_floating_point()]
        with torch.no_grad():
            self.comm.all_reduce(buffers, Purpose.eval)
        return self.model
