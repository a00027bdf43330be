"""ImageNet and any ImageFolder tree (train/ and val/ or test/ of class folders), decoded per sample."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Subset
from torchvision import datasets as tv_datasets
from torchvision.transforms import v2

from resist.config import AugmentPolicy, DatasetConfig, image_size
from resist.data import augment, imagefiles
from resist.data.datasets import DatasetError, DataSplits, SeededAugmentation, mixed_order

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
EVAL_SPLITS = ("val", "test")  # the first that exists is the evaluation split


def check(cfg: DatasetConfig) -> tuple[Path, Path]:
    """The training and evaluation split directories (``val/``, else ``test/``), without listing
    them; raises DatasetError when one is missing."""
    root = Path(cfg.root or "")
    expected = "expected an ImageFolder tree <root>/train/<class>/<image> + <root>/val/<class>/<image> (or test/)"
    if not (root / "train").is_dir():
        raise DatasetError(
            f"dataset.root: no {cfg.name.value} data: '{root / 'train'}' ({(root / 'train').resolve()}) is not a "
            f"directory; {expected} (fix: set dataset.root to the directory holding train/ and val/ or test/)"
        )
    for name in EVAL_SPLITS:
        if (root / name).is_dir():
            return root / "train", root / name
    raise DatasetError(
        f"dataset.root: no {cfg.name.value} evaluation split: neither '{root / 'val'}' nor '{root / 'test'}' is a "
        f"directory (under {root.resolve()}); {expected} (fix: add val/ or test/ beside train/, or set "
        "dataset.root to the directory holding them)"
    )


def preflight(cfg: DatasetConfig) -> None:
    """:func:`check`, then the layout of both splits (images in each, the same class folders) and
    the first bytes of every image file (no decoding): the launcher's check before workers start."""
    splits = [imagefiles.scan(split_dir) for split_dir in check(cfg)]
    imagefiles.check_splits(splits)
    imagefiles.check_files(splits)


def read(cfg: DatasetConfig, seed: int) -> DataSplits:
    """ImageNet-style trees decoded from disk per sample. Training: ``dataset.augment`` (``auto``:
    crop_flip below 96 px, else RandomResizedCrop + flip); evaluation and ``none``: resize to 8/7 of
    the size + center crop (256/224 at the default 224). ``crop_flip`` pads that center crop by 1/8
    and takes a random crop of it, flipped or not."""
    train_dir, test_dir = check(cfg)
    size = image_size(cfg)
    policy = augment.resolve(cfg)
    normalize = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(*IMAGENET_STATS)]
    center = [v2.Resize(size * 8 // 7), v2.CenterCrop(size)]
    random = augment.random_transforms(policy, size)
    train_tf = random if policy == AugmentPolicy.resized_crop_flip else center + random
    train = _image_folder(train_dir, None)
    test = _image_folder(test_dir, v2.Compose(center + normalize))
    classes = imagefiles.check_splits(
        [imagefiles.from_samples(d, ds.classes, ds.samples) for d, ds in ((train_dir, train), (test_dir, test))]
    )
    return DataSplits(
        train=SeededAugmentation(train, v2.Compose(train_tf + normalize), random=bool(random)),
        test=Subset(test, mixed_order(len(test)).tolist()),  # class-mixed evaluation batches
        num_classes=len(classes),
        in_channels=3,
        description=f"{cfg.name.value} (ImageFolder at {cfg.root}; evaluation split: {test_dir.name}/): "
        f"{len(train)} train / {len(test)} {test_dir.name}, {len(classes)} classes, {size}×{size} px, "
        f"augment {policy.value}",
    )


def _image_folder(split_dir: Path, transform: v2.Transform | None) -> tv_datasets.ImageFolder:
    """torchvision's ImageFolder of ``split_dir`` with :func:`imagefiles.load_image` (decode errors
    name the file); empty class folders are kept for :func:`imagefiles.check_splits` to report."""
    try:
        return tv_datasets.ImageFolder(str(split_dir), transform, loader=imagefiles.load_image, allow_empty=True)
    except FileNotFoundError as exc:  # no class folder at all
        raise imagefiles.no_images(split_dir) from exc
