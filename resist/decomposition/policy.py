"""The paper's random layer-wise decomposition, as a pure function of (blocks, S, m, seed, round).

Every rank computes the same assignment locally from a generator seeded by ``(seed, round)``: no
communication, and the same partition after a resume.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from resist.seeding import derive_seed


@dataclass(frozen=True)
class Assignment:
    """``blocks[s]``: the global indices of the partitionable blocks worker ``s`` holds, ascending."""

    blocks: tuple[tuple[int, ...], ...]

    @property
    def num_workers(self) -> int:
        return len(self.blocks)

    @property
    def num_slots(self) -> int:
        """Blocks held, summed over workers (a block held by k workers counts k times)."""
        return sum(len(held) for held in self.blocks)

    def holders(self, block: int) -> tuple[int, ...]:
        """The workers holding ``block``, ascending."""
        return tuple(worker for worker, held in enumerate(self.blocks) if block in held)


def site_sizes(num_blocks: int, num_workers: int, min_depth: int) -> list[int]:
    """Blocks per worker: ``max(⌊n/S⌋, m)`` each, and when that leaves blocks over, one more for each
    of the first ``n − S·⌊n/S⌋`` workers (22 blocks: [11,11], [6,6,5,5], [3,3,3,3,3,3,2,2])."""
    if num_workers < 1:
        raise ValueError(f"need at least one worker, got {num_workers}")
    if num_blocks < 1:
        raise ValueError("there are no partitionable blocks")
    if not 0 <= min_depth <= num_blocks:
        raise ValueError(f"minimum depth {min_depth} is outside 0..{num_blocks} (the partitionable blocks)")
    per_site = max(num_blocks // num_workers, min_depth)
    remainder = max(num_blocks - num_workers * per_site, 0)
    return [per_site + (1 if site < remainder else 0) for site in range(num_workers)]


def paper_assignment(
    blocks: Sequence[int], *, num_workers: int, min_depth: int, seed: int, round_index: int
) -> Assignment:
    """The paper's sampler: a stream of fresh random permutations of ``blocks`` is dealt in contiguous
    chunks of :func:`site_sizes`; a worker skips a block it already holds (possible only once the
    stream enters its second permutation, which happens when S·m > n and makes some blocks shared
    by several workers). Every block is held by at least one worker."""
    sizes = site_sizes(len(blocks), num_workers, min_depth)
    rng = random.Random(derive_seed(seed, "partition", round_index))
    stream: list[int] = []

    def next_block() -> int:
        if not stream:
            permutation = list(blocks)
            rng.shuffle(permutation)
            stream.extend(reversed(permutation))
        return stream.pop()

    assignment = []
    for size in sizes:
        held: set[int] = set()
        while len(held) < size:
            held.add(next_block())
        assignment.append(tuple(sorted(held)))
    return Assignment(tuple(assignment))


def eval_residual_scale(num_workers: int, min_depth: int, num_blocks: int) -> float:
    """Residual scale of the partitioned blocks in the global model at test time: ``max(1/S, m/n)``."""
    return max(1.0 / num_workers, min_depth / num_blocks)


Policy = Callable[..., Assignment]  # (blocks, *, num_workers, min_depth, seed, round_index)
POLICIES: dict[str, Policy] = {"paper": paper_assignment}
