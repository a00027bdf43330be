"""The bandwidth what-if model (pure): a round's wall-clock on another network, from what a run
measured.

    round seconds = compute seconds + wire bytes × 8 ÷ bandwidth + latency × messages

per worker and round: ``compute`` is the measured compute time of the round's local steps, ``wire
bytes`` the measured (ledger) bytes the worker sends in the round, ``messages`` the point-to-point
messages the worker's transfers take (a ring all-reduce over S workers is 2(S − 1) messages, a
hand-off send one). Communication is assumed not to overlap computation (true of local SGD's and
ResIST's round-end synchronisation; DDP overlaps its all-reduce with the backward pass, so its
projection is an upper bound), and every link to have the same bandwidth and latency.
"""

from __future__ import annotations

from dataclasses import dataclass

GBIT = 1e9  # bits per second in one Gbit/s


@dataclass(frozen=True)
class RoundCost:
    """What one worker's round costs, as measured: ``compute_s`` seconds of local steps,
    ``wire_bytes`` sent, ``messages`` point-to-point messages."""

    compute_s: float
    wire_bytes: float
    messages: float


def round_seconds(cost: RoundCost, *, bandwidth_bits_per_s: float, latency_s: float) -> float:
    """The round's projected wall-clock (seconds) on a network of the given bandwidth and latency."""
    return cost.compute_s + 8 * cost.wire_bytes / bandwidth_bits_per_s + latency_s * cost.messages


def ring_messages(all_reduces: float, workers: int) -> float:
    """Messages each worker sends for ``all_reduces`` ring all-reduces over ``workers`` workers."""
    return all_reduces * 2 * (workers - 1)


@dataclass(frozen=True)
class LinkFit:
    """A link's measured ``latency_s`` per message and ``bandwidth_bits_per_s``, from two transfer
    sizes: ``t = latency × messages + 8 × bytes ÷ bandwidth``."""

    latency_s: float
    bandwidth_bits_per_s: float


def fit_link(small: tuple[float, float, float], large: tuple[float, float, float]) -> LinkFit:
    """Fit the link from two measurements, each ``(wire bytes, messages, seconds)`` per worker: the
    large transfer sets the bandwidth after the small one's per-message latency is taken out."""
    small_bytes, small_messages, small_s = small
    large_bytes, large_messages, large_s = large
    # two equations t = a·m + 8·b / B in the unknowns a and 1/B
    det = small_messages * 8 * large_bytes - large_messages * 8 * small_bytes
    latency = (small_s * 8 * large_bytes - large_s * 8 * small_bytes) / det
    inverse_bandwidth = (small_messages * large_s - large_messages * small_s) / det
    return LinkFit(latency_s=latency, bandwidth_bits_per_s=1 / inverse_bandwidth)


def dedicated_compute(measured_s: float, *, workers: int, threads_per_worker: int, host_cpus: int) -> float:
    """The compute seconds a worker would take on cores of its own, from seconds measured while
    ``workers`` workers of ``threads_per_worker`` threads shared ``host_cpus`` CPUs: when they asked
    for more threads than there were CPUs, each got ``host_cpus / (workers × threads)`` of the time
    (an approximation: it ignores memory bandwidth and cache sharing)."""
    return measured_s * min(1.0, host_cpus / (workers * threads_per_worker))
