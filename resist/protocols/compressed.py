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
worker's values to anchor + mean change, identical on all workers. bf16 and int8 without error
feedback: with stochastic int8 rounding each encoding is unbiased and small (absmax / 127), and
the error of one round's mean change is not carried into the next (the anchor is replaced, not
re-encoded). int4's step (absmax / 7) is 18× larger, so with int4 each worker keeps an
error-feedback residual over the averaged tensors: what its encodings dropped this round is added
to its next round's changes (:meth:`Comm.all_reduce_compressed`), and over the run the anchors
track the exact sum of the mean changes to within one round's residual. The anchors and residuals
are checkpointed with the protocol's state, so a resumed run continues from the same ones.

ResIST's co-held blocks follow the same rule: each holder sends the block's change since its
round-start anchor, encoded (stochastic rounding, unbiased), point to point to the block's
aggregator (:func:`resist.comm.exchange_compressed`). No residual there: a holder encodes a
block's change once per round and the block usually leaves it at the round end, so a residual
would have nowhere to go; the one-round error does not compound (the aggregator's result is
delivered in float32 and becomes the next anchor).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from resist.comm import Comm, Purpose, exchange_compressed
from resist.comm.codecs import BF16, Codec, Int4, Int8
from resist.config import Compression
from resist.decomposition import Assignment
from resist.decomposition.transfers import Transfers, receives_of, sends_of
from resist.generators import generator


def codec_for(compression: Compression) -> Codec | None:
    """The codec of ``protocol.compress`` (None: float32, uncompressed)."""
    codecs = {Compression.none: None, Compression.bf16: BF16(), Compression.int8: Int8(), Compression.int4: Int4()}
    return codecs[compression]


def workers_codec(comm: Comm, compression: Compression) -> Codec | None:
    """The codec a worker of ``comm`` encodes with: ``protocol.compress``'s, or None when it is
    float32 or the worker is alone (a single worker sends nothing, so it encodes nothing)."""
    return None if comm.size == 1 else codec_for(compression)


class DeltaAveraging:
    """Average tensors over the workers by sending their changes since :meth:`start_from`, encoded
    with ``codec`` (None: a float32 all-reduce of the changes, as DiLoCo's pseudo-gradients);
    stochastic rounding draws from a generator derived from ``seed``, the round and the rank (so a
    resumed run draws the same). A codec with ``error_feedback`` (int4) keeps this worker's
    residual: what its encodings lost, sent with the next round's changes."""

    def __init__(self, comm: Comm, codec: Codec | None, *, seed: int) -> None:
        self.comm, self.codec, self.seed = comm, codec, seed
        self.anchors: list[torch.Tensor] | None = None
        self.residual: torch.Tensor | None = None  # flat, float32, over all anchors' values

    def start_from(self, tensors: Sequence[torch.Tensor]) -> None:
        """``tensors`` hold the values every worker shares now (after a broadcast or an average).
        A residual kept for other tensors is dropped (the caller says so where it happens)."""
        self.anchors = [t.detach().clone() for t in tensors]
        self.residual = None
        if self.codec is not None and self.codec.error_feedback:
            self.residual = torch.zeros(sum(t.numel() for t in tensors), device=self.comm.device)

    def mean_change(self, tensors: Sequence[torch.Tensor], *, round_index: int, purpose: Purpose) -> list[torch.Tensor]:
        """The workers' mean change of ``tensors`` (in :meth:`start_from`'s order and shapes) since
        the anchors, the same on every worker; the anchors are left as they are."""
        if self.anchors is None or len(self.anchors) != len(tensors):
            raise RuntimeError("DeltaAveraging: start_from was not called with these tensors")
        with torch.no_grad():
            changes = [t.detach() - a for t, a in zip(tensors, self.anchors, strict=True)]
            if self.codec is None:
                self.comm.all_reduce(changes, purpose)
                return changes
            draws = generator(self.seed, "compress", round_index, self.comm.rank)
            self.comm.all_reduce_compressed(changes, purpose, codec=self.codec, generator=draws, residual=self.residual)
            return changes

    def average(self, tensors: Sequence[torch.Tensor], *, round_index: int, purpose: Purpose) -> None:
        """Set ``tensors`` to anchor + the workers' mean change, on every worker alike; the result is
        the next round's anchor."""
        changes = self.mean_change(tensors, round_index=round_index, purpose=purpose)
        with torch.no_grad():
            for tensor, anchor, change in zip(tensors, self.anchors or [], changes, strict=True):
                anchor.add_(change)
                tensor.copy_(anchor)

    def held_bytes(self) -> int:
        """Bytes of the anchors and the residual this worker keeps."""
        kept = [*(self.anchors or []), *([] if self.residual is None else [self.residual])]
        return sum(t.numel() * t.element_size() for t in kept)

    def state_dict(self) -> dict[str, Any]:
        return {"anchors": self.anchors, "residual": self.residual}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.anchors = state["anchors"]
        self.residual = state.get("residual")  # (checkpoints of int8 or bf16 runs before int4 had none)


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
