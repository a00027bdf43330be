"""Data-parallel SGD with torch's DistributedDataParallel; its gradient all-reduces run through one of
torch's communication hooks (float32, bf16 or PowerSGD: ``protocol.compress``), billed to the ledger
(:mod:`resist.comm.gradient_hooks`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resist.comm import Comm, Purpose, data_parallel
from resist.comm.gradient_hooks import BF16Hook, Float32Hook, PowerSGDHook
from resist.config import DDPConfig, GradientCompression
from resist.protocols.base import ModelFactory, TrainingProtocol, build_replica


def gradient_hook(comm: Comm, cfg: DDPConfig, *, seed: int) -> Float32Hook:
    """The communication hook of ``cfg.compress`` for the worker that owns ``comm``."""
    if cfg.compress == GradientCompression.powersgd:
        return PowerSGDHook(comm, rank=cfg.powersgd_rank, start_step=cfg.powersgd_start_step, seed=seed)
    return {GradientCompression.none: Float32Hook, GradientCompression.bf16: BF16Hook}[cfg.compress](comm)


class DataParallel(TrainingProtocol):
    """Every step is a round: gradients are averaged in DDP's buckets during backward.

    Initial weights are agreed through ``Comm`` (a digest, :func:`build_replica`; DDP's own initial
    sync is off), and BatchNorm running statistics, which DDP would re-broadcast from rank 0
    every forward without billing, are instead averaged through ``Comm`` before each evaluation
    (billed to ``eval``). The hook's state (PowerSGD's residuals and factors) is checkpointed with
    the protocol's.
    """

    name = "ddp"
    final_model = "the replicated model (gradients averaged every step; BatchNorm running statistics averaged)"

    def __init__(self, comm: Comm, cfg: DDPConfig, *, seed: int) -> None:
        super().__init__(comm)
        self.hook = gradient_hook(comm, cfg, seed=seed)

    def setup(self, make_model: ModelFactory, steps_per_epoch: int, state: dict[str, Any] | None = None) -> nn.Module:
        model = build_replica(make_model, self.comm, restoring=state is not None)
        if state is not None and "gradient_hook" in state:  # absent from float32 checkpoints before hooks had state
            self.hook.load_state_dict(state["gradient_hook"])
        self.model = model
        return data_parallel(model, self.comm, self.hook)

    def end_round(self, optimizer: torch.optim.Optimizer, last_round: bool = False) -> nn.Module | None:
        """Every step: bill the step's gradient all-reduces (done once the backward pass is)."""
        self.hook.settle()
        return None

    def eval_model(self) -> nn.Module:
        buffers = [b for b in self.model.buffers() if b.is_floating_point()]
        with torch.no_grad():
            self.comm.all_reduce(buffers, Purpose.eval)
        return self.model

    def state_dict(self) -> dict[str, Any]:
        """The gradient hook's state (empty but for PowerSGD)."""
        return {"gradient_hook": self.hook.state_dict()}
