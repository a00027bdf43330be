"""ResIST's hand-off and evaluation-gather plans (pure), over many random assignments."""

from __future__ import annotations

import itertools

import pytest

from resist.decomposition import paper_assignment
from resist.decomposition.transfers import eval_gather_plan, hand_off_plan, receives_of, sends_of

BLOCKS = tuple(range(1, 23))  # PreActResNet-101's partitionable blocks of stage 2
CASES = [(2, 0), (3, 0), (4, 0), (4, 6), (8, 0), (8, 4), (5, 9)]


def _pairs(workers: int, min_depth: int):
    for round_index in range(12):
        yield (
            paper_assignment(BLOCKS, num_workers=workers, min_depth=min_depth, seed=7, round_index=round_index),
            paper_assignment(BLOCKS, num_workers=workers, min_depth=min_depth, seed=7, round_index=round_index + 1),
        )


def _received(transfers, rank):
    return [b for _, blocks in receives_of(transfers, rank) for b in blocks]


@pytest.mark.parametrize(("workers", "min_depth"), CASES)
def test_every_next_holder_gets_each_block_exactly_once(workers, min_depth):
    for current, following in _pairs(workers, min_depth):
        plan = hand_off_plan(current, following, BLOCKS)
        for rank in range(workers):
            arriving = _received(plan.deliver, rank)
            assert len(arriving) == len(set(arriving))  # nothing twice
            assert sorted(arriving + list(plan.kept(rank))) == list(following.blocks[rank])
            assert set(plan.kept(rank)) <= set(current.blocks[rank])  # kept blocks were already here
        for b in BLOCKS:  # gather: every other holder's copy reaches the aggregator once
            agg = plan.aggregators[b]
            assert agg in current.holders(b)
            senders = [s for (s, r), blocks in plan.gather.items() if r == agg and b in blocks]
            assert sorted(senders) == [h for h in current.holders(b) if h != agg]


@pytest.mark.parametrize(("workers", "min_depth"), CASES)
def test_bytes_are_the_moved_blocks_and_staying_blocks_move_nothing(workers, min_depth):
    for current, following in _pairs(workers, min_depth):
        plan = hand_off_plan(current, following, BLOCKS)
        delivered = sum(len(blocks) for blocks in plan.deliver.values())
        gathered = sum(len(blocks) for blocks in plan.gather.values())
        assert delivered == sum(len(set(following.holders(b)) - {plan.aggregators[b]}) for b in BLOCKS)
        assert gathered == sum(len(current.holders(b)) - 1 for b in BLOCKS)
        for b in BLOCKS:
            if current.holders(b) == following.holders(b) and len(current.holders(b)) == 1:
                assert not any(b in blocks for blocks in [*plan.gather.values(), *plan.deliver.values()])


def test_without_minimum_depth_a_block_moves_once_from_its_old_holder_to_its_new_one():
    for current, following in _pairs(4, 0):
        plan = hand_off_plan(current, following, BLOCKS)
        assert plan.gather == {}
        expected = {}
        for b in BLOCKS:
            (old,), (new,) = current.holders(b), following.holders(b)
            if old != new:
                expected.setdefault((old, new), []).append(b)
        assert plan.deliver == {pair: tuple(blocks) for pair, blocks in sorted(expected.items())}


@pytest.mark.parametrize(("workers", "min_depth"), CASES)
def test_the_last_round_moves_only_copies_of_shared_blocks(workers, min_depth):
    current = paper_assignment(BLOCKS, num_workers=workers, min_depth=min_depth, seed=1, round_index=3)
    plan = hand_off_plan(current, current, BLOCKS)
    shared = [b for b in BLOCKS if len(current.holders(b)) > 1]
    assert sum(len(blocks) for blocks in plan.deliver.values()) == sum(len(current.holders(b)) - 1 for b in shared)
    for rank in range(workers):  # a worker keeps what it aggregates (or holds alone)
        assert set(plan.kept(rank)) == {b for b in current.blocks[rank] if plan.aggregators[b] == rank}


@pytest.mark.parametrize(("workers", "min_depth"), CASES)
def test_evaluation_gives_every_worker_every_block_once(workers, min_depth):
    current = paper_assignment(BLOCKS, num_workers=workers, min_depth=min_depth, seed=2, round_index=0)
    plan = eval_gather_plan(current, BLOCKS)
    for rank in range(workers):
        received = _received(plan, rank)
        assert sorted(received + list(current.blocks[rank])) == list(BLOCKS)
        for receiver, blocks in sends_of(plan, rank):
            assert all(min(current.holders(b)) == rank for b in blocks) and receiver != rank
    assert sum(len(blocks) for blocks in plan.values()) == sum(workers - len(current.holders(b)) for b in BLOCKS)
    assert list(plan) == sorted(plan) and all(list(blocks) == sorted(blocks) for blocks in plan.values())
    assert not any(s == r for s, r in itertools.chain(plan))
