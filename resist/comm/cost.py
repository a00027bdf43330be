"""The byte cost model (pure): bytes each rank puts on the wire for one operation.

Two conventions are reported everywhere:

* *payload* bytes: ``numel × element size`` of the tensors an operation communicates, on every
  participating rank (what the caller hands to the operation);
* *modeled wire* bytes: what each rank sends under a standard algorithm — ring all-reduce
  ``2(n−1)/n × payload``, ring all-gather ``(n−1) × payload`` (payload = one rank's part),
  flat broadcast (the root sends the payload to each of the other n−1 ranks), flat reduce (each
  non-root sends its payload to the root), point-to-point send = payload, receive = 0.

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


def wire_bytes(op: Op, payload_bytes: int, group_size: int, *, is_root: bool = False) -> float:
    """Modeled bytes one rank sends for ``op`` on ``payload_bytes`` in a group of ``group_size``.

    ``is_root`` marks the root of a broadcast or reduce. A group of one sends nothing.
    """
    n = group_size
    if n < 1 or payload_bytes < 0:
        raise ValueError(f"invalid operation size: payload {payload_bytes} B, group {n}")
    if op == Op.all_reduce:
        return 2 * (n - 1) / n * payload_bytes
    if op == Op.all_gather:
        return (n - 1) * payload_bytes
    if op == Op.broadcast:
        return (n - 1) * payload_bytes if is_root else 0.0
    if op == Op.reduce:
        return 0.0 if is_root or n == 1 else float(payload_bytes)
    if op == Op.send:
        return float(payload_bytes)
    return 0.0


def ring_all_reduce_bytes_per_worker(num_parameters: int, num_workers: int, element_bytes: int = 4) -> float:
    """Wire bytes per worker of one full-model ring all-reduce: ``2(S−1)/S × P × element bytes``."""
    return wire_bytes(Op.all_reduce, num_parameters * element_bytes, num_workers)


def table1_bytes_per_round(held_bytes_per_worker: list[int]) -> int:
    """The paper's Table-1 convention: every worker uploads and downloads everything it holds,
    ``Σ_workers 2 × held bytes`` (parameter-server style; no ring factor)."""
    return 2 * sum(held_bytes_per_worker)


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
