"""The byte cost model (pure): bytes each rank puts on the wire for one operation.

Two conventions are reported everywhere:

* *payload* bytes: ``numel × element size`` of the tensors an operation communicates, on every
  participating rank (what the caller hands to the operation);
* *modeled wire* bytes: what each rank sends under a standard algorithm — ring all-reduce
  ``2(n−1)/n × payload``, ring all-gather ``(n−1) × payload`` (payload = one rank's part),
  pipelined broadcast (a chain from the root, root → root+1 → … mod n, in pieces: every rank but
  the chain's last forwards the payload once, as NCCL's ring broadcast does), reduce (each
  non-root sends one payload: a partial sum along the chain toward the root, or its own values
  straight to it), point-to-point send = payload, receive = 0.

The paper's own Table-1 count (2 × the bytes each worker holds) is a third convention, reported
beside them: :func:`resist.paper.table1_bytes_per_round`.

The all-reduce figures assume the ring algorithm, whose per-rank bytes are the bandwidth-optimal
2(n−1)/n × payload; NCCL may choose another (a tree, for small payloads or many nodes), which sends
the same total differently spread, so a figure here is the ring's, not a trace of NCCL's choice.

The ledger records what operations actually moved; this model exists to check it in tests and to
document the conventions, never to replace the measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum


class Op(str, Enum):
    all_reduce = "all_reduce"
    broadcast = "broadcast"
    reduce = "reduce"
    all_gather = "all_gather"
    send = "send"
    recv = "recv"


def wire_bytes(op: Op, payload_bytes: int, group_size: int, *, position: int = 0) -> float:
    """Modeled bytes one rank sends for ``op`` on ``payload_bytes`` in a group of ``group_size``.

    ``position``: for a broadcast or reduce, the rank's place counted from the root,
    ``(rank − root) mod n`` (0: the root). A group of one sends nothing.
    """
    n = group_size
    if n < 1 or payload_bytes < 0 or not 0 <= position < n:
        raise ValueError(f"invalid operation size: payload {payload_bytes} B, group {n}, position {position}")
    if op == Op.all_reduce:
        return 2 * (n - 1) / n * payload_bytes
    if op == Op.all_gather:
        return (n - 1) * payload_bytes
    if op == Op.broadcast:
        return float(payload_bytes) if position < n - 1 else 0.0
    if op == Op.reduce:
        return float(payload_bytes) if position > 0 else 0.0
    if op == Op.send:
        return float(payload_bytes)
    return 0.0


def ring_all_reduce_bytes_per_worker(num_parameters: int, num_workers: int, element_bytes: int = 4) -> float:
    """Wire bytes per worker of one full-model ring all-reduce: ``2(S−1)/S × P × element bytes``."""
    return wire_bytes(Op.all_reduce, num_parameters * element_bytes, num_workers)


@dataclass(frozen=True)
class PowerSGDSizes:
    """The values one rank all-reduces for a bucket in a compressing step of torch's PowerSGD hook:
    ``uncompressed`` (tensors that travel as they are), ``p`` and ``q`` (the factors)."""

    uncompressed: int
    p: int
    q: int

    @property
    def total(self) -> int:
        return self.uncompressed + self.p + self.q


def powersgd_sizes(shapes: Sequence[Sequence[int]], rank: int, min_compression_rate: float = 2) -> PowerSGDSizes:
    """torch's PowerSGD rule on gradient ``shapes``: each tensor is viewed as an n × m matrix (n its
    first dimension), approximated at rank ``r = min(n, m, rank)`` when ``(n + m) r ×
    min_compression_rate < n m``, sending P (n × r) and Q (m × r); otherwise (vectors among them) it
    travels uncompressed."""
    uncompressed = p = q = 0
    for shape in shapes:
        n, m = shape[0], math.prod(shape[1:])
        r = min(n, m, rank)
        if (n + m) * r * min_compression_rate < n * m:
            p, q = p + n * r, q + m * r
        else:
            uncompressed += n * m
    return PowerSGDSizes(uncompressed, p, q)
