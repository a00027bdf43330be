"""Dataset readers behind one table: digits (embedded), CIFAR-10/100 (torchvision pickle or class
folders), ImageNet / any ImageFolder tree, and seeded synthetic tensors.

Every reader returns a :class:`DataSplits`. A missing or malformed dataset raises
:class:`DatasetError` whose message is one line naming the path, the layout expected and how to get
the data; :func:`check_available` runs the same checks, and for folder datasets looks at every image
file's first bytes (the layout of the splits, no empty split or class, no file that is not an image)
without decoding any, so the launcher can fail before a worker starts. A file that passes that look
but does not decode raises DatasetError naming it when it is read.
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
    """``check(cfg)`` raises :class:`DatasetError` without listing or reading files; ``read(cfg, seed)``
    returns the splits (``seed`` drives synthetic data only); ``preflight(cfg)`` (default: ``check``)
    is the launcher's fuller check, which may list the files and read their first bytes."""

    check: Callable[[DatasetConfig], object]
    read: Callable[[DatasetConfig, int], DataSplits]
    preflight: Callable[[DatasetConfig], object] | None = None


READERS: dict[DatasetName, Reader] = {
    DatasetName.digits: Reader(_nothing_to_check, digits.read),
    DatasetName.cifar10: Reader(cifar.check, cifar.read, cifar.preflight),
    DatasetName.cifar100: Reader(cifar.check, cifar.read, cifar.preflight),
    DatasetName.imagenet: Reader(folder.check, folder.read, folder.preflight),
    DatasetName.imagefolder: Reader(folder.check, folder.read, folder.preflight),
    DatasetName.synthetic: Reader(_nothing_to_check, synthetic.read),
}


def check_available(cfg: DatasetConfig) -> None:
    """Raise :class:`DatasetError` if ``cfg`` names data that is not where it says, or (folder
    datasets) a split without images, a class folder one split lacks, or a file that is not an image."""
    reader = READERS[cfg.name]
    (reader.preflight or reader.check)(cfg)


def load(cfg: DatasetConfig, seed: int) -> DataSplits:
    """Read the dataset ``cfg`` names (``seed`` drives synthetic data only)."""
    reader = READERS[cfg.name]
    reader.check(cfg)
    splits = reader.read(cfg, seed)
    log.info("data: %s", splits.description)
    return splits
