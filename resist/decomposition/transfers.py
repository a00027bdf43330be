"""Who sends which block to whom (pure): ResIST's hand-off at a round end and the gather that
assembles the global model for evaluation, as data that :class:`resist.protocols.resist.ResIST`
executes through ``Comm`` and that tests check without any worker running.

A *transfer* list maps ``(sender, receiver)`` to the blocks sent, ascending: every pair of workers
exchanges one bucket per phase, its blocks in ascending order on both sides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from resist.decomposition.policy import Assignment

Transfers = dict[tuple[int, int], tuple[int, ...]]  # (sender, receiver) -> blocks, ascending


def _transfers(triples: Iterable[tuple[int, int, int]]) -> Transfers:
    grouped: dict[tuple[int, int], list[int]] = defaultdict(list)
    for sender, receiver, block in triples:
        grouped[(sender, receiver)].append(block)
    return {pair: tuple(sorted(blocks)) for pair, blocks in sorted(grouped.items())}


def sends_of(transfers: Transfers, rank: int) -> list[tuple[int, tuple[int, ...]]]:
    """``(receiver, blocks)`` that ``rank`` sends, by ascending receiver."""
    return [(receiver, blocks) for (sender, receiver), blocks in transfers.items() if sender == rank]


def receives_of(transfers: Transfers, rank: int) -> list[tuple[int, tuple[int, ...]]]:
    """``(sender, blocks)`` that ``rank`` receives, by ascending sender."""
    return [(sender, blocks) for (sender, receiver), blocks in transfers.items() if receiver == rank]


def aggregator(now: Sequence[int], following: Sequence[int]) -> int:
    """Where a block's copies meet: a holder that keeps it (the lowest-ranked), else its
    lowest-ranked holder."""
    staying = sorted(set(now) & set(following))
    return staying[0] if staying else min(now)


@dataclass(frozen=True)
class HandOffPlan:
    """The round end of the partitioned blocks, from this round's ``current`` assignment to the next
    round's ``following`` one.

    1. ``gather``: a block with k > 1 holders is averaged at its :func:`aggregator`, which receives the
       other k − 1 copies;
    2. ``deliver``: the aggregator (the only holder, for a block with one) sends the block to every
       next holder but itself. A block whose next holders are just its aggregator moves nothing.

    After the last round (no next round) ``following`` is ``current``: copies are averaged and
    returned to their co-holders, nothing else moves.
    """

    current: Assignment
    following: Assignment
    aggregators: dict[int, int]
    gather: Transfers
    deliver: Transfers

    def kept(self, rank: int) -> tuple[int, ...]:
        """Blocks ``rank`` holds next round without receiving them (it aggregated or kept them)."""
        arriving = {b for _, blocks in receives_of(self.deliver, rank) for b in blocks}
        return tuple(b for b in self.following.blocks[rank] if b not in arriving)


def hand_off_plan(current: Assignment, following: Assignment, blocks: Sequence[int]) -> HandOffPlan:
    """The :class:`HandOffPlan` for the partitionable ``blocks`` (global indices)."""
    aggregators = {b: aggregator(current.holders(b), following.holders(b)) for b in blocks}
    gather = _transfers(
        (holder, aggregators[b], b) for b in blocks for holder in current.holders(b) if holder != aggregators[b]
    )
    deliver = _transfers(
        (aggregators[b], holder, b) for b in blocks for holder in following.holders(b) if holder != aggregators[b]
    )
    return HandOffPlan(current, following, aggregators, gather, deliver)


def eval_gather_plan(current: Assignment, blocks: Sequence[int]) -> Transfers:
    """Evaluation's transfers: every worker receives each block it does not hold from the block's
    lowest-ranked holder (after a hand-off, every holder's copy is the same)."""
    return _transfers(
        (min(current.holders(b)), worker, b)
        for b in blocks
        for worker in range(current.num_workers)
        if b not in current.blocks[worker]
    )
