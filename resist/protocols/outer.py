"""DiLoCo's outer optimizer (arXiv 2311.08105): the workers' mean change over a round, negated (the
*pseudo-gradient*), is applied to the round's starting values by Nesterov SGD.

:class:`OuterNesterov` is the update rule alone (in place, no communication); :class:`OuterAveraging`
is a round end of DiLoCo for a fixed list of tensors: the mean change (:class:`DeltaAveraging`,
float32 or encoded), then the outer step on the parameters and plain averaging of the buffers.
ResIST applies the same rule to its shared layers with :class:`OuterAveraging` and to each block
with :class:`OuterNesterov` at the worker that averages the block (:mod:`resist.protocols.resist`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from resist.comm import Comm, Purpose
from resist.comm.codecs import Codec
from resist.protocols.compressed import DeltaAveraging


@dataclass(frozen=True)
class OuterNesterov:
    """Nesterov SGD on pseudo-gradients, torch's ``SGD(nesterov=True)`` rule without weight decay:
    with ``g = −mean change``, ``m ← momentum·m + g`` and ``start ← start − lr·(g + momentum·m)``
    (with zero initial momenta, bit for bit what torch's optimizer computes for gradient ``g``).
    ``lr`` 1 and ``momentum`` 0 make the new start the plain average (local SGD)."""

    lr: float
    momentum: float

    def step(
        self, starts: Sequence[torch.Tensor], changes: Sequence[torch.Tensor], momenta: Sequence[torch.Tensor]
    ) -> None:
        """Update ``starts`` (the round's starting values) and their ``momenta`` in place from the
        workers' mean ``changes``."""
        with torch.no_grad():
            for start, change, momentum in zip(starts, changes, momenta, strict=True):
                gradient = -change
                momentum.mul_(self.momentum).add_(gradient)  # (torch's order of operations, bit for bit)
                start.add_(gradient.add(momentum, alpha=self.momentum), alpha=-self.lr)

    def apply(
        self, values: Sequence[torch.Tensor], starts: Sequence[torch.Tensor], momenta: Sequence[torch.Tensor]
    ) -> None:
        """Set ``values`` (the round's averaged outcome, one per momentum) to the outer step from their
        ``starts``, which become that outcome too; ``starts`` may be longer (the rest is ignored)."""
        starts = starts[: len(values)]
        self.step(starts, [v - s for v, s in zip(values, starts, strict=True)], momenta)
        with torch.no_grad():
            for value, start in zip(values, starts, strict=True):
                value.copy_(start)


class OuterAveraging:
    """A DiLoCo round end for a fixed list of tensors, the same on every worker: the mean change
    since the round's start (float32 all-reduce, or encoded by ``codec``, :class:`DeltaAveraging`),
    the outer step on the first ``parameters`` tensors (one outer momentum each) and the plain
    average on the rest (floating-point buffers). Holds the round's starting values (the
    averaging's anchors) and the outer momenta: two copies of the tensors' parameters."""

    def __init__(self, comm: Comm, codec: Codec | None, *, seed: int, outer: OuterNesterov) -> None:
        self.averaging = DeltaAveraging(comm, codec, seed=seed)
        self.outer = outer
        self.momenta: list[torch.Tensor] = []

    def start_from(self, tensors: Sequence[torch.Tensor], *, parameters: int) -> None:
        """``tensors`` (their first ``parameters`` are parameters) hold the values every worker
        shares now; outer momenta start at zero."""
        self.averaging.start_from(tensors)
        self.momenta = [torch.zeros_like(t) for t in tensors[:parameters]]

    def synchronize(self, tensors: Sequence[torch.Tensor], *, round_index: int, purpose: Purpose) -> None:
        """Set ``tensors`` to the round's outcome (the next round's start) on every worker."""
        changes = self.averaging.mean_change(tensors, round_index=round_index, purpose=purpose)
        starts = self.averaging.anchors or []
        count = len(self.momenta)
        self.outer.step(starts[:count], changes[:count], self.momenta)  # (a block's: OuterNesterov.apply)
        with torch.no_grad():
            for start, change in zip(starts[count:], changes[count:], strict=True):
                start.add_(change)
            for tensor, start in zip(tensors, starts, strict=True):
                tensor.copy_(start)

    def held_bytes(self) -> int:
        """Bytes this worker keeps for it: the starting values, the outer momenta and (int4) the
        error-feedback residual."""
        return self.averaging.held_bytes() + sum(m.numel() * m.element_size() for m in self.momenta)

    def state_dict(self) -> dict[str, Any]:
        return {"averaging": self.averaging.state_dict(), "momenta": self.momenta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaging.load_state_dict(state["averaging"])
        self.momenta = state["momenta"]


class RoundAveraging:
    """How a round ends for a fixed list of tensors, the same on every worker: with ``outer`` the
    outer step (:class:`OuterAveraging`), else with ``codec`` the encoded changes
    (:class:`DeltaAveraging`), else one float32 all-reduce of the values (nothing kept)."""

    def __init__(self, comm: Comm, codec: Codec | None, *, seed: int, outer: OuterNesterov | None) -> None:
        self.comm = comm
        self.kept: OuterAveraging | DeltaAveraging | None = None
        if outer is not None:
            self.kept = OuterAveraging(comm, codec, seed=seed, outer=outer)
        elif codec is not None:
            self.kept = DeltaAveraging(comm, codec, seed=seed)

    def start_from(self, tensors: Sequence[torch.Tensor], *, parameters: int) -> None:
        """``tensors`` (their first ``parameters`` are parameters) hold what every worker shares now."""
        if isinstance(self.kept, OuterAveraging):
            self.kept.start_from(tensors, parameters=parameters)
        elif self.kept is not None:
            self.kept.start_from(tensors)

    def synchronize(self, tensors: Sequence[torch.Tensor], *, round_index: int, purpose: Purpose) -> None:
        if isinstance(self.kept, OuterAveraging):
            self.kept.synchronize(tensors, round_index=round_index, purpose=purpose)
        elif self.kept is not None:
            self.kept.average(tensors, round_index=round_index, purpose=purpose)
        else:
            with torch.no_grad():
                self.comm.all_reduce(tensors, purpose)

    def held_bytes(self) -> int:
        return 0 if self.kept is None else self.kept.held_bytes()
