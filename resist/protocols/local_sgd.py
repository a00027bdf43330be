"""Local SGD: every worker trains the whole model for ``local_steps`` steps, then the replicas are
averaged (parameters and BatchNorm running statistics) with one bucketed all-reduce."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resist.comm import Comm, Purpose
from resist.config import LocalSGDConfig, OptimizerStatePolicy
from resist.models.preact import PreActResNet
from resist.protocols.base import ModelFactory, TrainingProtocol, broadcast_initial_state, model_state_tensors


class LocalSGD(TrainingProtocol):
    """``paper_style`` reproduces the paper code's communication pattern: the shared part is
    all-reduced, the partitionable blocks (the non-first blocks of the default partition stage)
    are reduced to rank 0 and broadcast back from it. The resulting average is the same."""

    name = "local_sgd"
    final_model = "the workers' replicas averaged after the last round"

    def __init__(self, comm: Comm, cfg: LocalSGDConfig) -> None:
        super().__init__(comm)
        self.steps_per_round = cfg.local_steps
        self.reset_optimizer = cfg.optimizer_state == OptimizerStatePolicy.reset
        self.paper_style = cfg.paper_style
        self.paper_style_stage = cfg.paper_style_stage

    def setup(self, make_model: ModelFactory, steps_per_epoch: int, state: dict[str, Any] | None = None) -> nn.Module:
        model = make_model(initialize=state is None)
        if state is None:
            broadcast_initial_state(model, self.comm)
        self.model = model
        everything = model_state_tensors(model)
        self.partitioned: list[torch.Tensor] = []
        if self.paper_style:
            assert isinstance(model, PreActResNet)
            stage = model.spec.default_partition_stage if self.paper_style_stage is None else self.paper_style_stage
            blocks = [model.block(stage, i) for i in model.spec.partitionable_blocks(stage)]
            self.partitioned = [t for block in blocks for t in model_state_tensors(block)]
        ids = {id(t) for t in self.partitioned}
        self.shared = [t for t in everything if id(t) not in ids]
        return model

    def end_round(self, optimizer: torch.optim.Optimizer, last_round: bool = False) -> None:  # type: ignore[override]
        with torch.no_grad():
            self.comm.all_reduce(self.shared, Purpose.train_sync)
            if self.partitioned:
                self.comm.reduce(self.partitioned, dst=0, purpose=Purpose.train_sync)
                self.comm.broadcast(self.partitioned, src=0, purpose=Purpose.train_sync)
        if self.reset_optimizer:
            optimizer.state.clear()

    def eval_model(self) -> nn.Module:
        return self.model
