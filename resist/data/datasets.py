"""The containers every reader returns: splits, in-memory images, seeded augmentation, synthetic
samples, and the one error a reader raises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from resist.errors import UserError
from resist.generators import seeded_global_generator
from resist.seeding import derive_seed

Transform = Callable[[torch.Tensor], torch.Tensor]


class DatasetError(UserError, FileNotFoundError):
    """A dataset that is missing or not laid out as expected; ``str()`` is one line."""

    def __init__(self, message: str) -> None:
        # torch's DataLoader re-raises a loader process's error as ``DatasetError("Caught DatasetError in
        # DataLoader worker process 0.\nOriginal Traceback ...\n...DatasetError: <message>")``: keep
        # the original message, one line.
        if "\n" in message:
            last = message.strip().splitlines()[-1]
            message = last.partition("DatasetError: ")[2] or " ".join(message.split())
        super().__init__(message)


@dataclass
class DataSplits:
    train: Dataset
    test: Dataset
    num_classes: int
    in_channels: int
    description: str


class TensorImages(Dataset):
    """Images held in memory as one tensor (N, C, H, W), with an optional per-sample transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Transform | None = None) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


class SeededAugmentation(Dataset):
    """A training split: ``base``'s samples through ``transform``, indexed by ``(index, seed)``
    keys (:class:`resist.data.sharding.ShardSampler` yields them). When ``random``, the transform's
    random draws come from ``seed`` alone, so augmentation is reproducible and independent of
    anything else the process draws (torchvision's transforms can only use torch's global
    generator: they run under :func:`resist.generators.seeded_global_generator`)."""

    def __init__(self, base: Dataset, transform: Transform | None = None, random: bool = True) -> None:
        self.base, self.transform, self.random = base, transform, random

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, seed = key
        image, label = self.base[index]
        if self.transform is None:
            return image, label
        if not self.random:
            return self.transform(image), label
        with seeded_global_generator(seed):
            return self.transform(image), label


class SyntheticImages(Dataset):
    """Seeded random images and labels; sample ``i`` is a pure function of (seed, split, i)."""

    def __init__(
        self, num_samples: int, *, shape: tuple[int, int, int], num_classes: int, seed: int, split: str
    ) -> None:
        self.num_samples, self.shape, self.num_classes = num_samples, shape, num_classes
        self.base_seed = derive_seed(seed, "synthetic", split)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.base_seed + index)
        label = int(torch.randint(self.num_classes, (), generator=g))
        return torch.randn(self.shape, generator=g), label


def mixed_order(num_samples: int) -> torch.Tensor:
    """A fixed permutation (the same on every machine and for every seed) that puts a class-sorted
    folder split in mixed-class order, as torchvision's CIFAR pickles are. Evaluation batches must
    mix classes: with batch-statistics BatchNorm, a batch of one class is normalised to uninformative
    features."""
    return torch.randperm(num_samples, generator=torch.Generator().manual_seed(derive_seed(0, "folder-order")))
