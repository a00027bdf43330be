"""Seeded synthetic images: any shape and class count, no files (benchmarks, +debug=fast); never
augmented (``dataset.augment`` is ignored)."""

from __future__ import annotations

from resist.config import DatasetConfig, image_size
from resist.data.datasets import DataSplits, SeededAugmentation, SyntheticImages


def read(cfg: DatasetConfig, seed: int) -> DataSplits:
    size = image_size(cfg)
    shape = (cfg.channels, size, size)
    assert cfg.num_classes is not None  # validated
    return DataSplits(
        train=SeededAugmentation(
            SyntheticImages(cfg.num_train_samples, shape=shape, num_classes=cfg.num_classes, seed=seed, split="train")
        ),
        test=SyntheticImages(cfg.num_test_samples, shape=shape, num_classes=cfg.num_classes, seed=seed, split="test"),
        num_classes=cfg.num_classes,
        in_channels=cfg.channels,
        description=f"synthetic: {cfg.num_train_samples} train / {cfg.num_test_samples} test, shape {shape}",
    )
