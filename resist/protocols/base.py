"""The protocol interface the training loop drives.

The loop owns data, forward/backward, the optimizer step, evaluation and reporting; a protocol
decides what module this worker trains and what happens at the end of each round (a round is
``ProtocolConfig.steps_per_round`` optimizer steps; the last round of a run may be shorter). The loop never
branches on the protocol.
"""

from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from resist.comm import Comm, Purpose
from resist.models.residual_units import ResidualUnits

log = logging.getLogger(__name__)


class ModelFactory(Protocol):
    """Builds the run's network (a :class:`~resist.models.residual_units.ResidualUnits` module) on the
    worker's device: all blocks (``held_blocks`` None) or the given blocks of some stages;
    ``initialize`` False skips the (seeded) initialisation; ``meta``: on the meta device (shapes
    only, nothing allocated)."""

    def __call__(
        self, held_blocks: Mapping[int, Sequence[int]] | None = None, initialize: bool = True, meta: bool = False
    ) -> nn.Module: ...


class TrainingProtocol(ABC):
    name: str
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

    def held_state_bytes(self) -> int:
        """Bytes of tensors this worker keeps for the protocol beside its model and optimizer (the
        round's starting values, outer momenta, error-feedback residuals; reported as
        ``memory/protocol_bytes``); 0 by default."""
        return 0


def model_state_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Parameters and floating-point buffers (BatchNorm running statistics), in a fixed order."""
    return [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]


DIGEST_BYTES = 32
"""Bytes of one worker's digest of its initial values (SHA-256), all-gathered at the start."""


def values_digest(tensors: Sequence[torch.Tensor]) -> bytes:
    """SHA-256 of ``tensors``' bytes, in order (their dtypes and shapes included)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.digest()


def agree_on_initial_state(tensors: Sequence[torch.Tensor], comm: Comm) -> None:
    """Make every worker start from the same ``tensors`` without sending them: each built them from
    the run's seed (models initialise on the CPU from derived seeds), so the workers all-gather a
    SHA-256 digest of their values (:data:`DIGEST_BYTES` each, billed to ``init``) and compare.
    Where the digests differ (workers on different torch builds, say), rank 0's values are
    broadcast (billed to ``init``) with a warning, so a run always starts from one state."""
    mine = torch.frombuffer(bytearray(values_digest(tensors)), dtype=torch.uint8).to(comm.device)
    digests = comm.all_gather(mine, Purpose.init)
    if all(torch.equal(d, digests[0]) for d in digests):
        return
    differing = [rank for rank, d in enumerate(digests) if not torch.equal(d, digests[0])]
    if comm.rank == 0:
        log.warning(
            "init: workers %s built other initial weights from the seed than worker 0 (another torch build or "
            "CPU?): worker 0's are broadcast, and bitwise reproducibility across these hosts does not hold",
            differing,
        )
    with torch.no_grad():
        comm.broadcast(list(tensors), src=0, purpose=Purpose.init)


def build_replica(
    make_model: ModelFactory,
    comm: Comm,
    *,
    restoring: bool,
    held_blocks: Mapping[int, Sequence[int]] | None = None,
    agreed: Callable[[nn.Module], Sequence[torch.Tensor]] | None = model_state_tensors,
) -> nn.Module:
    """This worker's replica of the run's network (all blocks, or ``held_blocks``), built with
    ``make_model``. ``restoring``: built uninitialised and without communicating, for the caller to
    load a checkpoint's weights into. Otherwise initialised from the run's seed, and the tensors
    ``agreed`` picks from it (by default all parameters and floating-point buffers) are agreed on by
    every worker (:func:`agree_on_initial_state`); ``agreed`` None: nothing is (a lone worker)."""
    model = make_model(held_blocks, initialize=not restoring)
    if not restoring and agreed is not None:
        agree_on_initial_state(agreed(model), comm)
    return model


def copy_common_state(target: nn.Module, source: nn.Module) -> None:
    """Copy into ``target`` what it shares with ``source`` (networks of one layout holding other
    blocks): every block both hold, and every parameter and buffer outside the stages (by name)."""
    assert isinstance(target, ResidualUnits) and isinstance(source, ResidualUnits)
    pairs: list[tuple[nn.Module, nn.Module]] = []
    in_stages: set[int] = set()
    for stage in range(target.layout.num_stages):
        in_stages |= {id(t) for m in target.stage_slots(stage).slot_modules() for t in model_state_tensors(m)}
        common = set(target.held_block_ids(stage)) & set(source.held_block_ids(stage))
        pairs += [(target.block(stage, b), source.block(stage, b)) for b in sorted(common)]
    outside = dict(source.named_parameters()) | dict(source.named_buffers())
    with torch.no_grad():
        for name, tensor in [*target.named_parameters(), *target.named_buffers()]:
            if id(tensor) not in in_stages and tensor.is_floating_point():
                tensor.copy_(outside[name])
        for into, out_of in pairs:
            for t, s in zip(model_state_tensors(into), model_state_tensors(out_of), strict=True):
                t.copy_(s)
