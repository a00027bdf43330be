"""Compressed point-to-point exchange, beside :meth:`Comm.all_reduce_compressed`: items of float32
tensors, each packed into one 1-D vector (the tensors back to back, in order) and sent encoded by a
codec (:mod:`resist.comm.codecs`); a received item is decoded and unpacked into the same shapes.

Only the encodings travel, so the ledger bills exactly their bytes. What an item should hold (the
change since a value both ends already have, never absolute weights) is the caller's concern.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from resist.comm.codecs import Codec
from resist.comm.comm import Comm, flat_copy, unflatten
from resist.comm.ledger import Purpose

Item = tuple[int, int]
"""``(peer, key)``: the other end of one transfer, and what the transfer carries (a block id, say)."""


def exchange_compressed(
    comm: Comm,
    codec: Codec,
    *,
    sends: Mapping[Item, Sequence[torch.Tensor]],
    receives: Sequence[Item],
    like: Callable[[int], Sequence[torch.Tensor]],
    generator: torch.Generator | None,
    purpose: Purpose,
) -> dict[Item, list[torch.Tensor]]:
    """One batched exchange (:meth:`Comm.exchange`) of items, item ``(peer, key)`` shaped as the float32
    tensors ``like(key)``:
    ``sends`` maps each ``(peer, key)`` this worker sends to the tensors for ``peer``, packed and
    encoded by ``codec`` in ascending ``(peer, key)`` order (stochastic rounding draws from
    ``generator`` in that order); ``receives`` lists the ``(peer, key)`` this worker receives. A
    peer's bucket holds its items in ascending key order on both ends. Billed to ``purpose`` as the
    encodings' bytes, scales included. Returns each received item's decoded tensors, shaped as
    ``like`` of its key."""

    def numel(key: int) -> int:
        return sum(t.numel() for t in like(key))

    encoded = {item: codec.encode(flat_copy(values), generator) for item, values in sorted(sends.items())}
    inbox = {
        (peer, key): torch.empty(codec.encoded_bytes(numel(key)), dtype=torch.uint8, device=comm.device)
        for peer, key in sorted(receives)
    }
    comm.exchange(_by_peer(encoded), _by_peer(inbox), purpose)
    return {(peer, key): unflatten(codec.decode(data, numel(key)), like(key)) for (peer, key), data in inbox.items()}


def _by_peer(buffers: Mapping[Item, torch.Tensor]) -> list[tuple[int, list[torch.Tensor]]]:
    """``buffers`` grouped into one bucket per peer, in ascending peer order; a bucket keeps the
    mapping's order of its items."""
    peers = sorted({peer for peer, _ in buffers})
    return [(peer, [data for (p, _), data in buffers.items() if p == peer]) for peer in peers]
