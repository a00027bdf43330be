"""Training augmentation policies (``dataset.augment``) as torchvision transforms."""

from __future__ import annotations

from torchvision.transforms import v2

from resist.config import AugmentPolicy, DatasetConfig, image_size

# ``auto`` picks resized_crop_flip from this image size (pixels) on, crop_flip below it.
AUTO_RESIZED_CROP_FROM = 96


def resolve(cfg: DatasetConfig) -> AugmentPolicy:
    """``cfg.augment`` with ``auto`` resolved by the image size the model sees."""
    if cfg.augment != AugmentPolicy.auto:
        return cfg.augment
    if image_size(cfg) < AUTO_RESIZED_CROP_FROM:
        return AugmentPolicy.crop_flip
    return AugmentPolicy.resized_crop_flip


def random_transforms(policy: AugmentPolicy, size: int, *, flip: bool = True) -> list[v2.Transform]:
    """The random transforms of ``policy`` (a resolved one) producing ``size``×``size`` images;
    ``flip=False`` leaves out the horizontal flip. ``crop_flip`` expects ``size``×``size`` input
    (it pads by ``size // 8``: 4 px at 32, as for CIFAR); ``resized_crop_flip`` takes any size."""
    flips = [v2.RandomHorizontalFlip()] if flip else []
    if policy == AugmentPolicy.crop_flip:
        return [v2.RandomCrop(size, padding=size // 8), *flips]
    if policy == AugmentPolicy.resized_crop_flip:
        return [v2.RandomResizedCrop(size), *flips]
    if policy == AugmentPolicy.none:
        return []
    raise ValueError(f"unresolved augmentation policy {policy}")
