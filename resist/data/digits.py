"""scikit-learn's handwritten digits, bundled with the package: the embedded default's data."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from resist.config import DatasetConfig, image_size
from resist.data import augment
from resist.data.datasets import DataSplits, SeededAugmentation, TensorImages


def read(cfg: DatasetConfig, seed: int) -> DataSplits:
    """scikit-learn's 8×8 handwritten digits (1,797 images, bundled with the package), resized to
    ``image_size`` and split 80/20 (stratified, fixed). ``dataset.augment`` without flips (a
    mirrored digit is another symbol): ``crop_flip`` (``auto`` below 96 px) is a random crop of the
    image padded by 1/8 of its side."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    size = image_size(cfg)
    images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    labels = torch.tensor(digits.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(range(len(labels)), test_size=0.2, stratify=digits.target, random_state=0)
    train_idx, test_idx = torch.tensor(train_idx), torch.tensor(test_idx)
    mean, std = images[train_idx].mean().item(), images[train_idx].std().item()
    images = (images - mean) / std
    policy = augment.resolve(cfg)
    random = augment.random_transforms(policy, size, flip=False)
    transform = v2.Compose(random) if random else None
    return DataSplits(
        train=SeededAugmentation(TensorImages(images[train_idx], labels[train_idx]), transform),
        test=TensorImages(images[test_idx], labels[test_idx]),
        num_classes=10,
        in_channels=1,
        description=f"digits (scikit-learn): {len(train_idx)} train / {len(test_idx)} test, {size}×{size} px, "
        f"augment {policy.value} (no flips)",
    )
