"""Dataset readers behind one table: digits (embedded), CIFAR-10/100 (torchvision pickle or class
folders), ImageNet / any ImageFolder tree, and seeded synthetic tensors.

Every reader returns a :class:`DataSplits`. A missing or malformed dataset raises
:class:`DatasetError` whose message is one line naming the path, the layout expected and how to get
the data; :func:`check_available` runs the same checks without reading any image, so the launcher
can fail before a worker starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from resist.config import DatasetConfig, DatasetName
from resist.data import cifar, digits, folder, synthetic
from resist.data.datasets import DatasetError, DataSplits, SeededAugmentation, mixed_order

__all__ = [
    "READERS",
    "DataSplits",
    "DatasetError",
    "Reader",
    "SeededAugmentation",
    "check_available",
    "load",
    "mixed_order",
]

log = logging.getLogger(__name__)


def _nothing_to_check(cfg: DatasetConfig) -> None:
    return None


@dataclass(frozen=True)
class Reader:
    """``check(cfg)`` raises :class:`DatasetError` without reading an image; ``read(cfg, seed)``
    returns the splits (``seed`` drives synthetic data only)."""

    check: Callable[[DatasetConfig], object]
    read: Callable[[DatasetConfig, int], DataSplits]


READERS: dict[DatasetName, Reader] = {
    DatasetName.digits: Reader(_nothing_to_check, digits.read),
    DatasetName.cifar10: Reader(cifar.check, cifar.read),
    DatasetName.cifar100: Reader(cifar.check, cifar.read),
    DatasetName.imagenet: Reader(folder.check, folder.read),
    DatasetName.imagefolder: Reader(folder.check, folder.read),
    DatasetName.synthetic: Reader(_nothing_to_check, synthetic.read),
}


def check_available(cfg: DatasetConfig) -> None:
    """Raise :class:`DatasetError` if ``cfg`` names data that is not where it says."""
    READERS[cfg.name].check(cfg)


def load(cfg: DatasetConfig, seed: int) -> DataSplits:
    """Read the dataset ``cfg`` names (``seed`` drives synthetic data only)."""
    reader = READERS[cfg.name]
    reader.check(cfg)
    splits = reader.read(cfg, seed)
    log.info("data: %s", splits.description)
    return splits
