"""Which training samples a worker reads in an epoch, and in what order (pure), plus a resumable
sampler built on it."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from resist.config import ShardingMode
from resist.generators import generator


def shard_size(num_samples: int, num_workers: int, mode: ShardingMode) -> int:
    """Samples one worker reads per epoch: ``num_samples // num_workers`` for disjoint shards (the
    remainder, a different one each epoch, is skipped), all of them for ``full_shuffle``."""
    if num_workers < 1 or num_samples < num_workers:
        raise ValueError(f"cannot shard {num_samples} samples over {num_workers} workers")
    return num_samples // num_workers if mode == ShardingMode.disjoint else num_samples


def epoch_indices(
    num_samples: int, *, num_workers: int, rank: int, seed: int, epoch: int, mode: ShardingMode
) -> list[int]:
    """Sample indices worker ``rank`` reads in ``epoch``, in order.

    ``disjoint``: one permutation shared by all workers (seeded by ``seed, epoch``) is cut into
    ``num_workers`` equal contiguous shards, so shards are disjoint and equal-size.
    ``full_shuffle``: each worker permutes the whole dataset with its own seed (``seed, epoch, rank``).
    """
    if not 0 <= rank < num_workers:
        raise ValueError(f"rank {rank} is outside 0..{num_workers - 1}")
    size = shard_size(num_samples, num_workers, mode)
    if mode == ShardingMode.full_shuffle:
        return torch.randperm(num_samples, generator=generator(seed, "shuffle", epoch, rank)).tolist()
    permutation = torch.randperm(num_samples, generator=generator(seed, "shard", epoch))
    return permutation[rank * size : (rank + 1) * size].tolist()


def augmentation_seeds(num_samples: int, *, seed: int, epoch: int, rank: int) -> list[int]:
    """One seed per position of worker ``rank``'s ``epoch``: its samples' random augmentation is
    drawn from them, so it depends on (seed, epoch, rank, position) alone — not on global RNG
    state, on what else the worker did, or on the data loader's processes."""
    return torch.randint(0, 2**62, (num_samples,), generator=generator(seed, "augment", epoch, rank)).tolist()


class ShardSampler(Sampler[tuple[int, int]]):
    """Iterates ``(index, augmentation seed)`` keys: the :func:`epoch_indices` of the current epoch
    with their :func:`augmentation_seeds`, optionally skipping its first samples (so a resumed run
    continues mid-epoch exactly where it stopped). A training split is indexed with these keys."""

    def __init__(self, num_samples: int, *, num_workers: int, rank: int, seed: int, mode: ShardingMode) -> None:
        self.num_samples, self.num_workers, self.rank, self.seed, self.mode = (
            num_samples,
            num_workers,
            rank,
            seed,
            mode,
        )
        self.epoch = 0
        self.start = 0

    def __len__(self) -> int:
        return shard_size(self.num_samples, self.num_workers, self.mode) - self.start

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select ``epoch`` and skip its first ``start`` samples."""
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = epoch_indices(
            self.num_samples,
            num_workers=self.num_workers,
            rank=self.rank,
            seed=self.seed,
            epoch=self.epoch,
            mode=self.mode,
        )
        seeds = augmentation_seeds(len(indices), seed=self.seed, epoch=self.epoch, rank=self.rank)
        return iter(list(zip(indices, seeds, strict=True))[self.start :])


def eval_shard(num_samples: int, *, batch_size: int, rank: int, num_workers: int) -> range:
    """The contiguous slice of the test set worker ``rank`` evaluates: whole batches of
    ``batch_size`` dealt as evenly as possible, so the batches (and with batch-statistics
    BatchNorm, the results) are exactly those of a single evaluator."""
    num_batches = -(-num_samples // batch_size)
    per_worker, extra = divmod(num_batches, num_workers)
    first = rank * per_worker + min(rank, extra)
    last = first + per_worker + (1 if rank < extra else 0)
    return range(min(first * batch_size, num_samples), min(last * batch_size, num_samples))
