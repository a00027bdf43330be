"""An endless, resumable stream of training batches for one worker."""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset

from resist.config import ShardingMode
from resist.data.sharding import ShardSampler, shard_size
from resist.generators import generator


class BatchStream:
    """Yields ``(images, labels)`` batches of one worker's shard, epoch after epoch.

    ``steps_per_epoch`` is ``ceil(shard / batch_size)`` (the last batch of an epoch may be smaller,
    as in the paper's code). ``state_dict()`` holds the position (epoch, batch within it).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        num_workers: int,
        rank: int,
        seed: int,
        mode: ShardingMode,
        loader_workers: int = 0,
        device: torch.device | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.device = device or torch.device("cpu")
        self.sampler = ShardSampler(len(dataset), num_workers=num_workers, rank=rank, seed=seed, mode=mode)  # type: ignore[arg-type]
        self.steps_per_epoch = math.ceil(shard_size(len(dataset), num_workers, mode) / batch_size)  # type: ignore[arg-type]
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=loader_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            generator=generator(seed, "loader", rank),  # (its base seed would otherwise come from the global one)
        )
        self.epoch, self.batch_in_epoch = 0, 0
        self._iterator = None

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._iterator is None:
            self.sampler.set_epoch(self.epoch, start=self.batch_in_epoch * self.batch_size)
            self._iterator = iter(self.loader)
        images, labels = next(self._iterator)
        self.batch_in_epoch += 1
        if self.batch_in_epoch == self.steps_per_epoch:
            self.epoch, self.batch_in_epoch, self._iterator = self.epoch + 1, 0, None
        return images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def __iter__(self) -> BatchStream:
        return self

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.batch_in_epoch, self._iterator = state["epoch"], state["batch_in_epoch"], None
