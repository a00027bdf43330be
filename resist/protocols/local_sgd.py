"""Local SGD: every worker trains the whole model for ``local_steps`` steps, then the replicas are
averaged (parameters and BatchNorm running statistics) with one bucketed all-reduce, or, with
``protocol.compress``, by sending their encoded changes (:class:`DeltaAveraging`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resist.comm import Comm, Purpose
from resist.config import LocalSGDConfig, OptimizerStatePolicy
from resist.models.residual_units import ResidualUnits
from resist.protocols.base import ModelFactory, TrainingProtocol, build_replica, model_state_tensors
from resist.protocols.compressed import DeltaAveraging, workers_codec


class LocalSGD(TrainingProtocol):
    """``paper_style`` reproduces the paper code's communication pattern: the shared part is
    all-reduced, the partitionable blocks (the non-first blocks of the default partition stage)
    are reduced to rank 0 and broadcast back from it. The resulting average is the same."""

    name = "local_sgd"
    final_model = "the workers' replicas averaged after the last round"

    def __init__(self, comm: Comm, cfg: LocalSGDConfig, *, seed: int) -> None:
        """``seed`` derives the draws of stochastic rounding when ``cfg.compress`` is int8."""
        super().__init__(comm)
        self.reset_optimizer = cfg.optimizer_state == OptimizerStatePolicy.reset
        self.paper_style = cfg.paper_style
        self.paper_style_stage = cfg.paper_style_stage
        codec = workers_codec(comm, cfg.compress)
        self.averaging = None if codec is None else DeltaAveraging(comm, codec, seed=seed)
        self.round = 0

    def setup(self, make_model: ModelFactory, steps_per_epoch: int, state: dict[str, Any] | None = None) -> nn.Module:
        model = build_replica(make_model, self.comm, restoring=state is not None)
        self.model = model
        if state is not None:
            self.round = state["round"]
        everything = model_state_tensors(model)
        self.partitioned: list[torch.Tensor] = []
        if self.paper_style:
            assert isinstance(model, ResidualUnits)
            units = model.layout.partitioned_units(self.paper_style_stage)
            blocks = [model.block(*model.layout.locate(u)) for u in units]
            self.partitioned = [t for block in blocks for t in model_state_tensors(block)]
        ids = {id(t) for t in self.partitioned}
        self.shared = [t for t in everything if id(t) not in ids]
        if self.averaging is not None:
            if state is None:
                self.averaging.start_from(self.shared)
            else:
                self.averaging.load_state_dict(state["averaging"])
        return model

    def state_dict(self) -> dict[str, Any]:
        """The round count and, with compression, the averaging's anchors."""
        state: dict[str, Any] = {"round": self.round}
        if self.averaging is not None:
            state["averaging"] = self.averaging.state_dict()
        return state

    def held_state_bytes(self) -> int:
        """With compression, the anchors (and int4's residual)."""
        return 0 if self.averaging is None else self.averaging.held_bytes()

    def end_round(self, optimizer: torch.optim.Optimizer, last_round: bool = False) -> None:  # type: ignore[override]
        self.round += 1
        if self.averaging is not None:
            self.averaging.average(self.shared, round_index=self.round, purpose=Purpose.train_sync)
        else:
            self._average(self.shared)
        if self.reset_optimizer:
            optimizer.state.clear()

    def _average(self, shared: list[torch.Tensor]) -> None:
        with torch.no_grad():
            self.comm.all_reduce(shared, Purpose.train_sync)
            if self.partitioned:
                self.comm.reduce(self.partitioned, dst=0, purpose=Purpose.train_sync)
                self.comm.broadcast(self.partitioned, src=0, purpose=Purpose.train_sync)

    def eval_model(self) -> nn.Module:
        return self.model
