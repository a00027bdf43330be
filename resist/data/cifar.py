"""CIFAR-10/100: torchvision's pickle layout, or class folders of images (train/ and test/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tv_datasets
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset, pil_loader
from torchvision.transforms import v2

from resist.config import DatasetConfig, DatasetName
from resist.data.datasets import DatasetError, DataSplits, SeededAugmentation, TensorImages, mixed_order

CIFAR_STATS = {
    # The paper's normalisation constants (its data.py).
    DatasetName.cifar10: ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    DatasetName.cifar100: ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276)),
}
_PICKLE_DIRS = {DatasetName.cifar10: "cifar-10-batches-py", DatasetName.cifar100: "cifar-100-python"}
_TORCHVISION_CIFAR = {DatasetName.cifar10: tv_datasets.CIFAR10, DatasetName.cifar100: tv_datasets.CIFAR100}
_SHARED_CIFAR10_HINT = "offline: extract a cifar10-jpg.tar.gz (CIFAR-10 as class folders) into data/cifar10"


def check(cfg: DatasetConfig) -> str:
    """``"pickle"`` or ``"folder"``: which CIFAR layout lies under ``cfg.root``; raises DatasetError."""
    root = Path(cfg.root or "")
    pickle_dir = root / _PICKLE_DIRS[cfg.name]
    if pickle_dir.is_dir() or cfg.download:
        return "pickle"
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "folder"
    hint = f"; {_SHARED_CIFAR10_HINT} with dataset.root=data/cifar10" if cfg.name == DatasetName.cifar10 else ""
    raise DatasetError(
        f"dataset.root: no {cfg.name.value} data at '{root}' ({root.resolve()}); expected torchvision's pickle "
        f"layout <root>/{_PICKLE_DIRS[cfg.name]}/ or an ImageFolder layout <root>/train/<class>/*.jpg + "
        f"<root>/test/<class>/*.jpg (fix: set dataset.root to it, or dataset.download=true when online{hint})"
    )


def read(cfg: DatasetConfig, seed: int) -> DataSplits:
    layout = check(cfg)
    if layout == "pickle":
        tv_class = _TORCHVISION_CIFAR[cfg.name]
        try:
            train_set = tv_class(cfg.root, train=True, download=cfg.download)
            test_set = tv_class(cfg.root, train=False, download=cfg.download)
        except RuntimeError as exc:  # torchvision's integrity check failed
            raise DatasetError(
                f"dataset.root: {Path(cfg.root or '') / _PICKLE_DIRS[cfg.name]} is not a complete torchvision "
                f"{cfg.name.value} ({exc}) (fix: delete it and use dataset.download=true, or point dataset.root "
                "at a complete copy)"
            ) from exc
        train = (torch.from_numpy(train_set.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(train_set.targets))
        test = (torch.from_numpy(test_set.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(test_set.targets))
        classes = train_set.classes
        where = f"torchvision pickle layout at {Path(cfg.root or '') / _PICKLE_DIRS[cfg.name]}"
    else:
        root = Path(cfg.root or "")
        classes, train = _decode_folder(root / "train")
        test_classes, test = _decode_folder(root / "test")
        if test_classes != classes:
            raise DatasetError(
                f"dataset.root: {root}/train and {root}/test hold different classes "
                "(fix: give both splits the same class folders)"
            )
        where = f"ImageFolder layout at {root}"
    expected = 10 if cfg.name == DatasetName.cifar10 else 100
    if len(classes) != expected:
        raise DatasetError(
            f"dataset.root: found {len(classes)} classes at {cfg.root}, {cfg.name.value} has "
            f"{expected} (fix: point dataset.root at a complete {cfg.name.value})"
        )
    mean, std = CIFAR_STATS[cfg.name]
    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    augment = [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()] if cfg.augment else []
    return DataSplits(
        train=SeededAugmentation(TensorImages(*train), v2.Compose(augment + finish), random=cfg.augment),
        test=TensorImages(*test, v2.Compose(finish)),
        num_classes=expected,
        in_channels=3,
        description=f"{cfg.name.value} ({where}): {len(train[1])} train / {len(test[1])} test",
    )


def _decode_folder(split_dir: Path) -> tuple[list[str], tuple[torch.Tensor, torch.Tensor]]:
    """Decode an ImageFolder split of equally sized images into one uint8 tensor (N, 3, H, W), in
    :func:`mixed_order`."""
    classes, class_to_idx = find_classes(str(split_dir))
    samples = make_dataset(str(split_dir), class_to_idx, extensions=IMG_EXTENSIONS)
    images = np.stack([np.asarray(pil_loader(path)) for path, _ in samples])
    order = mixed_order(len(samples))
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2)[order].contiguous()
    return classes, (tensor, torch.tensor([label for _, label in samples])[order])
