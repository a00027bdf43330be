"""DiLoCo (Douillard et al., arXiv 2311.08105): local SGD whose round end is an outer optimizer step.

Every worker trains the whole model for ``local_steps`` steps of the inner optimizer (``optim``:
SGD or AdamW), keeping its inner state across rounds unless ``optimizer_state=reset``. At the round
end the workers' mean change since the round's start is computed (one all-reduce of the changes:
the bytes of local SGD's all-reduce of the values; with ``protocol.compress`` the encoded changes,
as local SGD's) and applied to the start by Nesterov SGD (:class:`OuterAveraging`), identically
on every worker. Each worker holds the round's start and the outer momentum beside the model:
two more copies of its parameters (reported as ``memory/protocol_bytes``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resist.comm import Comm, Purpose
from resist.config import DiLoCoConfig, OptimizerStatePolicy
from resist.protocols.base import ModelFactory, TrainingProtocol, build_replica, model_state_tensors
from resist.protocols.compressed import workers_codec
from resist.protocols.outer import OuterAveraging, OuterNesterov


class DiLoCo(TrainingProtocol):
    name = "diloco"
    final_model = "the round's start after the last outer step (the same on every worker)"

    def __init__(self, comm: Comm, cfg: DiLoCoConfig, *, seed: int) -> None:
        """``seed`` derives the draws of stochastic rounding when ``cfg.compress`` encodes."""
        super().__init__(comm)
        self.reset_optimizer = cfg.optimizer_state == OptimizerStatePolicy.reset
        codec = workers_codec(comm, cfg.compress)
        self.sync = OuterAveraging(comm, codec, seed=seed, outer=OuterNesterov(cfg.outer_lr, cfg.outer_momentum))
        self.round = 0

    def setup(self, make_model: ModelFactory, steps_per_epoch: int, state: dict[str, Any] | None = None) -> nn.Module:
        self.model = build_replica(make_model, self.comm, restoring=state is not None)
        self.tensors = model_state_tensors(self.model)  # parameters first, then floating-point buffers
        if state is None:
            self.sync.start_from(self.tensors, parameters=len(list(self.model.parameters())))
        else:
            self.round = state["round"]
            self.sync.load_state_dict(state["outer"])
        return self.model

    def state_dict(self) -> dict[str, Any]:
        """The round count, the round's start, the outer momenta (and int4's residual)."""
        return {"round": self.round, "outer": self.sync.state_dict()}

    def held_state_bytes(self) -> int:
        return self.sync.held_bytes()

    def end_round(self, optimizer: torch.optim.Optimizer, last_round: bool = False) -> None:  # type: ignore[override]
        self.round += 1
        self.sync.synchronize(self.tensors, round_index=self.round, purpose=Purpose.train_sync)
        if self.reset_optimizer:
            optimizer.state.clear()

    def eval_model(self) -> nn.Module:
        return self.model
