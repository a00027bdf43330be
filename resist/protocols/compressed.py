"""Compressed averaging for local SGD and ResIST (``protocol.compress``).

A value travels compressed only as its *change since a value its receiver already holds*, never as
itself: re-encoding absolute weights at every synchronisation injects a fresh quantisation error
each time (int8: up to one step of the chunk's scale, absmax / 127; bf16: half a unit in the last
place, which erases any change below it, such as a round of weight decay), and over a paper-length
run (about 1,250 rounds) those errors add up to more than the weights' own late movement. A change
is small, so its encoding error is a small fraction of the change, and the shared starting value
(the *anchor*) is exact on every end.

Every worker starts a round from the same values (the previous synchronisation's result), so
:class:`DeltaAveraging` keeps those anchors, averages the changes with
:meth:`Comm.all_reduce_compressed` (encoded shards, reduce-scatter then all-gather) and sets every
worker's values to anchor + mean change, identical on all workers. No error feedback: with
stochastic int8 rounding each encoding is unbiased, and the error of one round's mean change is
not carried into the next (the anchor is replaced, not re-encoded). The anchors are checkpointed
with the protocol's state, so a resumed run continues from the same ones. ResIST's co-held blocks
follow the same rule: each holder sends the block's change since its round-start anchor, encoded,
point to point to the block's aggregator (:func:`resist.comm.exchange_compressed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from resist.comm import Comm, Purpose, exchange_compressed
from resist.comm.codecs import BF16, Codec, Int8
from resist.config import Compression
from resist.decomposition import Assignment
from resist.decomposition.transfers import Transfers, receives_of, sends_of
from resist.generators import generator


def codec_for(compression: Compression) -> Codec | None:
    """The codec of ``protocol.compress`` (None: float32, uncompressed)."""
    return {Compression.none: None, Compression.bf16: BF16(), Compression.int8: Int8()}[compression]


def workers_codec(comm: Comm, compression: Compression) -> Codec | None:
    """The codec a worker of ``comm`` encodes with: ``protocol.compress``'s, or None when it is
    float32 or the worker is alone (a single worker sends nothing, so it encodes nothing)."""
    return None if comm.size == 1 else codec_for(compression)


class DeltaAveraging:
    """Average tensors over the workers by sending their changes since :meth:`start_from`,
    encoded with ``codec``; stochastic rounding draws from a generator derived from ``seed``, the
    round and the rank (so a resumed run draws the same)."""

    def __init__(self, comm: Comm, codec: Codec, *, seed: int) -> None:
        self.comm, self.codec, self.seed = comm, codec, seed
        self.anchors: list[torch.Tensor] | None = None

    def start_from(self, tensors: Sequence[torch.Tensor]) -> None:
        """``tensors`` hold the values every worker shares now (after a broadcast or an average)."""
        self.anchors = [t.detach().clone() for t in tensors]

    def average(self, tensors: Sequence[torch.Tensor], *, round_index: int, purpose: Purpose) -> None:
        """Set ``tensors`` (in :meth:`start_from`'s order and shapes) to anchor + the workers' mean
        change, on every worker alike; the result is the next round's anchor."""
        if self.anchors is None or len(self.anchors) != len(tensors):
            raise RuntimeError("DeltaAveraging.average: start_from was not called with these tensors")
        with torch.no_grad():
            changes = [t.detach() - a for t, a in zip(tensors, self.anchors, strict=True)]
            draws = generator(self.seed, "compress", round_index, self.comm.rank)
            self.comm.all_reduce_compressed(changes, purpose, codec=self.codec, generator=draws)
            for tensor, anchor, change in zip(tensors, self.anchors, changes, strict=True):
                anchor.add_(change)
                tensor.copy_(anchor)

    def state_dict(self) -> dict[str, Any]:
        return {"anchors": self.anchors}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.anchors = state["anchors"]


def average_changes_at_aggregators(
    comm: Comm,
    codec: Codec,
    gather: Transfers,
    *,
    current: Assignment,
    tensors: Callable[[int], list[torch.Tensor]],
    anchors: Mapping[int, list[torch.Tensor]],
    generator: torch.Generator,
) -> None:
    """ResIST's gather of co-held blocks with a codec (billed to ``handoff``): each holder but the
    aggregator sends its block's change since the round-start ``anchors``, encoded (stochastic
    rounding from ``generator``); the aggregator sets the block (``tensors(b)``) to anchor + the
    mean of its own change and the decoded others'."""
    rank = comm.rank
    sends, receives = sends_of(gather, rank), receives_of(gather, rank)

    def change(b: int) -> list[torch.Tensor]:
        """Block ``b``'s change since its anchor, tensor by tensor; tensors past the anchor's end
        (momentum anchored before there was any) change from zeros."""
        values, anchor = tensors(b), anchors[b]
        starts = [*anchor, *(torch.zeros_like(t) for t in values[len(anchor) :])]
        return [value - start for value, start in zip(values, starts, strict=True)]

    arrived = exchange_compressed(
        comm,
        codec,
        sends={(peer, b): change(b) for peer, blocks in sends for b in blocks},
        receives=[(peer, b) for peer, blocks in receives for b in blocks],
        like=tensors,  # a gathered block is one this worker holds
        generator=generator,
        purpose=Purpose.handoff,
    )
    for b in sorted({b for _, b in arrived}):
        holders, own = current.holders(b), change(b)
        others = [arrived[(p, b)] for p in holders if p != rank]
        for k, (target, mine) in enumerate(zip(tensors(b), own, strict=True)):  # anchor + own change
            mean = (mine + sum(theirs[k] for theirs in others)) / len(holders)
            target.add_(mean - mine)  # becomes anchor + mean change
