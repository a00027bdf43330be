"""The paper's decomposition policy: property tests."""

from __future__ import annotations

import pytest

from resist.decomposition import Assignment, eval_residual_scale, paper_assignment, site_sizes

BLOCKS = tuple(range(1, 23))  # the 22 partitionable blocks of PreActResNet-101's third stage


@pytest.mark.parametrize(("workers", "sizes"), [(2, [11, 11]), (4, [6, 6, 5, 5]), (8, [3, 3, 3, 3, 3, 3, 2, 2])])
def test_chunk_sizes_of_the_paper(workers, sizes):
    assert site_sizes(22, workers, 0) == sizes
    for round_index in range(5):
        assignment = paper_assignment(BLOCKS, num_workers=workers, min_depth=0, seed=0, round_index=round_index)
        assert [len(held) for held in assignment.blocks] == sizes
        assert sorted(b for held in assignment.blocks for b in held) == list(BLOCKS)  # a partition


@pytest.mark.parametrize(
    ("workers", "min_depth", "slots"), [(2, 0, 22), (4, 6, 24), (8, 4, 32), (8, 11, 88), (3, 22, 66)]
)
def test_minimum_depth_shares_blocks(workers, min_depth, slots):
    for round_index in range(10):
        assignment = paper_assignment(BLOCKS, num_workers=workers, min_depth=min_depth, seed=1, round_index=round_index)
        assert assignment.num_slots == slots
        assert all(len(held) >= min_depth and len(held) == len(set(held)) for held in assignment.blocks)
        assert all(held == tuple(sorted(held)) for held in assignment.blocks)
        holders = [assignment.holders(b) for b in BLOCKS]
        assert all(len(h) >= 1 for h in holders)  # every block is held
        assert sum(len(h) for h in holders) == slots


def test_deterministic_per_seed_and_round_and_different_across_rounds():
    a = paper_assignment(BLOCKS, num_workers=4, min_depth=0, seed=7, round_index=3)
    assert a == paper_assignment(BLOCKS, num_workers=4, min_depth=0, seed=7, round_index=3)
    others = {paper_assignment(BLOCKS, num_workers=4, min_depth=0, seed=7, round_index=r) for r in range(20)}
    assert len(others) == 20
    assert a != paper_assignment(BLOCKS, num_workers=4, min_depth=0, seed=8, round_index=3)


def test_holders():
    assignment = Assignment(((1, 2), (2, 3)))
    assert (assignment.holders(1), assignment.holders(2), assignment.holders(3)) == ((0,), (0, 1), (1,))
    assert assignment.num_slots == 4 and assignment.num_workers == 2


def test_test_time_scale():
    assert eval_residual_scale(4, 0, 22) == 0.25
    assert eval_residual_scale(8, 4, 22) == 4 / 22
    assert eval_residual_scale(2, 4, 22) == 0.5


@pytest.mark.parametrize(
    ("blocks", "workers", "min_depth", "message"),
    [
        (22, 0, 0, "at least one worker"),
        (0, 2, 0, "no partitionable blocks"),
        (22, 2, 23, "minimum depth 23 is outside 0..22"),
        (22, 2, -1, "outside"),
    ],
)
def test_impossible_decompositions(blocks, workers, min_depth, message):
    with pytest.raises(ValueError, match=message):
        site_sizes(blocks, workers, min_depth)
