"""Per-worker sharding: disjoint equal shards, independent shuffles, determinism, resume."""

from __future__ import annotations

import pytest

from resist.config import ShardingMode
from resist.data.sharding import ShardSampler, epoch_indices, shard_size


@pytest.mark.parametrize(("n", "workers"), [(100, 1), (100, 3), (1437, 4), (50_000, 8)])
def test_disjoint_shards_partition_the_epoch(n, workers):
    shards = [
        epoch_indices(n, num_workers=workers, rank=r, seed=5, epoch=2, mode=ShardingMode.disjoint)
        for r in range(workers)
    ]
    assert {len(s) for s in shards} == {n // workers} == {shard_size(n, workers, ShardingMode.disjoint)}
    everything = [i for s in shards for i in s]
    assert len(set(everything)) == len(everything) == workers * (n // workers)
    assert set(everything) <= set(range(n))


def test_disjoint_shards_change_per_epoch_and_are_reproducible():
    a = epoch_indices(1000, num_workers=4, rank=1, seed=0, epoch=0, mode=ShardingMode.disjoint)
    assert a == epoch_indices(1000, num_workers=4, rank=1, seed=0, epoch=0, mode=ShardingMode.disjoint)
    assert a != epoch_indices(1000, num_workers=4, rank=1, seed=0, epoch=1, mode=ShardingMode.disjoint)
    assert a != epoch_indices(1000, num_workers=4, rank=1, seed=1, epoch=0, mode=ShardingMode.disjoint)


def test_full_shuffle_gives_every_worker_the_whole_dataset_in_its_own_order():
    orders = [
        epoch_indices(500, num_workers=3, rank=r, seed=0, epoch=0, mode=ShardingMode.full_shuffle) for r in range(3)
    ]
    assert all(sorted(o) == list(range(500)) for o in orders)
    assert orders[0] != orders[1] != orders[2]


def test_sampler_resumes_mid_epoch():
    sampler = ShardSampler(100, num_workers=2, rank=1, seed=3, mode=ShardingMode.disjoint)
    sampler.set_epoch(4)
    whole = list(sampler)
    sampler.set_epoch(4, start=30)
    assert list(sampler) == whole[30:] and len(sampler) == 20


@pytest.mark.parametrize(("n", "workers", "rank"), [(3, 4, 0), (10, 0, 0), (10, 2, 2)])
def test_impossible_sharding_is_rejected(n, workers, rank):
    with pytest.raises(ValueError):
        epoch_indices(n, num_workers=workers, rank=rank, seed=0, epoch=0, mode=ShardingMode.disjoint)
