"""ImageNet and any ImageFolder tree (train/ and val/ of class folders), decoded per sample."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Subset
from torchvision import datasets as tv_datasets
from torchvision.transforms import v2

from resist.config import DatasetConfig, image_size
from resist.data.datasets import DatasetError, DataSplits, SeededAugmentation, mixed_order

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def check(cfg: DatasetConfig) -> tuple[Path, Path]:
    root = Path(cfg.root or "")
    test_split = "val"
    for split in (root / "train", root / test_split):
        if not split.is_dir():
            raise DatasetError(
                f"dataset.root: no {cfg.name.value} data: '{split}' ({split.resolve()}) is not a directory; "
                f"expected an ImageFolder tree <root>/train/<class>/<image> + <root>/{test_split}/<class>/<image> "
                "(fix: set dataset.root to the directory holding train/ and val/)"
            )
    return root / "train", root / test_split


def read(cfg: DatasetConfig, seed: int) -> DataSplits:
    """ImageNet-style trees decoded from disk per sample: RandomResizedCrop + flip for training,
    resize to 8/7 of the size + center crop for evaluation (256/224 at the default 224)."""
    train_dir, test_dir = check(cfg)
    size = image_size(cfg)
    normalize = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(*IMAGENET_STATS)]
    train_tf = (
        [v2.RandomResizedCrop(size), v2.RandomHorizontalFlip()]
        if cfg.augment
        else [v2.Resize(size * 8 // 7), v2.CenterCrop(size)]
    )
    test_tf = [v2.Resize(size * 8 // 7), v2.CenterCrop(size)]
    train = tv_datasets.ImageFolder(str(train_dir))
    test = tv_datasets.ImageFolder(str(test_dir), transform=v2.Compose(test_tf + normalize))
    if train.classes != test.classes:
        raise DatasetError(
            f"dataset.root: {train_dir} and {test_dir} hold different classes "
            "(fix: give both splits the same class folders)"
        )
    return DataSplits(
        train=SeededAugmentation(train, v2.Compose(train_tf + normalize), random=cfg.augment),
        test=Subset(test, mixed_order(len(test)).tolist()),  # class-mixed evaluation batches
        num_classes=len(train.classes),
        in_channels=3,
        description=f"{cfg.name.value} (ImageFolder at {cfg.root}): {len(train)} train / {len(test)} val, "
        f"{len(train.classes)} classes, {size}×{size} px",
    )
