"""A worker's run: everything it trains with, and its state as checkpoint shards hold it.

A shard holds what worker r needs to continue bit for bit: its (sub-)model's weights and buffers,
optimizer and gradient-scaler state, the protocol's state (round, assignment, warm-up), the data
stream's position, every random generator (python, numpy, torch CPU and CUDA), its byte ledger and
its reporter's accumulators, the steps done and the last evaluation. The learning rate is a function
of the step, so the step restores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from resist.checkpoints import Checkpoint
from resist.comm import Comm
from resist.config import Config
from resist.data.batches import BatchStream
from resist.data.sources import DataSplits
from resist.generators import global_rng_state, restore_global_rng_state
from resist.protocols.base import TrainingProtocol
from resist.train.report import Reporter
from resist.train.step_plan import StepPlan

SHARD_FORMAT = 1


@dataclass
class Run:
    """Everything one worker trains with, and the one owner of its checkpoint form
    (:meth:`state_dict` / :meth:`load_state_dict`, the ``Stateful`` shape). ``module`` and
    ``optimizer`` change when the protocol replaces the module (ResIST leaving its warm-up).
    ``platform`` is what its results depend on beyond the config
    (:func:`resist.train.platform.platform_facts`). ``step`` is the optimizer steps done: where a
    resumed run starts, then the last round end the loop reached; ``last_eval`` is the newest
    evaluation (a resumed run's: its checkpoint's). ``checkpoint`` is the newest one saved or resumed
    from."""

    cfg: Config
    comm: Comm
    data: DataSplits
    protocol: TrainingProtocol
    stream: BatchStream
    plan: StepPlan
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    reporter: Reporter
    scaler: torch.amp.GradScaler
    platform: dict[str, Any]
    step: int = 0
    last_eval: dict[str, float] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None

    def state_dict(self) -> dict[str, Any]:
        """Worker ``comm.rank``'s shard after ``step`` optimizer steps (a round end), format
        :data:`SHARD_FORMAT`: plain data and tensors, loadable with ``weights_only=True``. Reads the
        global random generators' state (after every other entry)."""
        return {
            "format": SHARD_FORMAT,
            "step": self.step,
            "model": self.protocol.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "protocol": self.protocol.state_dict(),
            "stream": self.stream.state_dict(),
            "ledger": self.comm.ledger.state_dict(),
            "reporter": self.reporter.state_dict(),
            "last_eval": dict(self.last_eval),
            "rng": global_rng_state(),
        }

    def load_state_dict(self, shard: dict[str, Any]) -> None:
        """Load what :meth:`state_dict` saved into a run built for it: its ``protocol`` entry is not
        read here, the protocol already rebuilt its module from it
        (:meth:`resist.protocols.base.TrainingProtocol.setup`). Sets the global random generators."""
        self.protocol.model.load_state_dict(shard["model"])
        self.optimizer.load_state_dict(shard["optimizer"])
        self.scaler.load_state_dict(shard["scaler"])
        self.stream.load_state_dict(shard["stream"])
        self.comm.ledger.load_state_dict(shard["ledger"])
        self.reporter.load_state_dict(shard["reporter"])
        restore_global_rng_state(shard["rng"])
        self.step, self.last_eval = shard["step"], shard["last_eval"]
