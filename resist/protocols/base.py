"""The protocol interface the training loop drives.

The loop owns data, forward/backward, the optimizer step, evaluation and reporting; a protocol
decides what module this worker trains and what happens at the end of each round (a round is
``steps_per_round`` optimizer steps; the last round of a run may be shorter). The loop never
branches on the protocol.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from resist.comm import Comm, Purpose
from resist.models.preact import PreActResNet


class ModelFactory(Protocol):
    """Builds the run's network on the worker's device: all blocks (``held_blocks`` None) or the
    given blocks of some stages; ``initialize`` False skips the (seeded) initialisation."""

    def __call__(
        self, held_blocks: Mapping[int, Sequence[int]] | None = None, initialize: bool = True
    ) -> PreActResNet: ...


class TrainingProtocol(ABC):
    name: str
    steps_per_round: int = 1
    final_model: str = ""
    """What the model saved at the end of a run is made of (written to the run's summary)."""

    model: nn.Module
    """The plain network this worker holds (its sub-network for ResIST; DDP's wrapped module)."""

    def __init__(self, comm: Comm) -> None:
        self.comm = comm

    @abstractmethod
    def setup(self, make_model: ModelFactory, steps_per_epoch: int, state: dict[str, Any] | None = None) -> nn.Module:
        """Build (with ``make_model``) and return the module this worker trains: a fresh start (``state``
        None: initial weights are shared, which communicates) or the structure a checkpoint's
        ``state`` (from :meth:`state_dict`) describes, without communicating (the caller then loads
        the checkpoint's weights into :attr:`model`)."""

    def end_round(self, optimizer: torch.optim.Optimizer, last_round: bool = False) -> nn.Module | None:
        """Called after the last optimizer step of every round, on every worker; may synchronise.
        ``last_round``: no round follows, so nothing needs to be prepared for one. Returns the
        module to train from now on when it changes (the loop then builds a new optimizer for it,
        with fresh optimizer state), else None."""
        return None

    @abstractmethod
    def eval_model(self) -> nn.Module:
        """The synchronised model to evaluate (called at round ends, on every worker)."""

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint beyond the model and optimizer: plain data and tensors, loadable with
        ``weights_only=True`` (none by default)."""
        return {}


def model_state_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Parameters and floating-point buffers (BatchNorm running statistics), in a fixed order."""
    return [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]


def broadcast_initial_state(model: nn.Module, comm: Comm) -> None:
    """Give every worker rank 0's initial weights (billed to ``init``)."""
    with torch.no_grad():
        comm.broadcast(model_state_tensors(model), src=0, purpose=Purpose.init)
