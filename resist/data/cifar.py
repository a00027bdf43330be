"""CIFAR-10/100: torchvision's pickle layout, or class folders of images (train/ and test/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tv_datasets
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from torchvision.transforms import v2

from resist.config import DatasetConfig, DatasetName
from resist.data import augment, decoded_cache, imagefiles
from resist.data.datasets import DatasetError, DataSplits, SeededAugmentation, TensorImages, mixed_order

CIFAR_STATS = {
    # The paper's normalisation constants (its data.py).
    DatasetName.cifar10: ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    DatasetName.cifar100: ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276)),
}
_PICKLE_DIRS = {DatasetName.cifar10: "cifar-10-batches-py", DatasetName.cifar100: "cifar-100-python"}
_TORCHVISION_CIFAR = {DatasetName.cifar10: tv_datasets.CIFAR10, DatasetName.cifar100: tv_datasets.CIFAR100}
_FOLDER_SPLITS = ("train", "test")
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


def preflight(cfg: DatasetConfig) -> None:
    """:func:`check`, and for the folder layout the splits' class folders, the first bytes of every
    image file (no decoding) and ``dataset.cache_dir``: the launcher's check before workers start."""
    if check(cfg) == "folder":
        root = Path(cfg.root or "")
        splits = [imagefiles.scan(root / name) for name in _FOLDER_SPLITS]
        _check_class_count(cfg, len(imagefiles.check_splits(splits)))
        imagefiles.check_files(splits)
        if cfg.cache_dir is not None:
            decoded_cache.check_cache_dir(cfg.cache_dir)


def read(cfg: DatasetConfig, seed: int) -> DataSplits:
    """The training split augmented by ``dataset.augment`` (``auto``, at 32 px: crop_flip, the
    pad-4 random crop + flip), both splits normalised with the paper's statistics."""
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
        listed = [_list_folder(root / name) for name in _FOLDER_SPLITS]
        classes = imagefiles.check_splits([split for split, _ in listed])
        train, test = (_read_folder(split.dir, samples, cfg.cache_dir) for split, samples in listed)
        where = f"ImageFolder layout at {root}"
    _check_class_count(cfg, len(classes))
    mean, std = CIFAR_STATS[cfg.name]
    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    policy = augment.resolve(cfg)
    random = augment.random_transforms(policy, 32)
    return DataSplits(
        train=SeededAugmentation(TensorImages(*train), v2.Compose(random + finish), random=bool(random)),
        test=TensorImages(*test, v2.Compose(finish)),
        num_classes=len(classes),
        in_channels=3,
        description=f"{cfg.name.value} ({where}): {len(train[1])} train / {len(test[1])} test, augment {policy.value}",
    )


def _check_class_count(cfg: DatasetConfig, found: int) -> None:
    expected = 10 if cfg.name == DatasetName.cifar10 else 100
    if found != expected:
        raise DatasetError(
            f"dataset.root: found {found} classes at {cfg.root}, {cfg.name.value} has "
            f"{expected} (fix: point dataset.root at a complete {cfg.name.value})"
        )


def _list_folder(split_dir: Path) -> tuple[imagefiles.Split, list[tuple[str, int]]]:
    """An ImageFolder split's classes and ``(path, label)`` samples, without opening any file."""
    try:
        classes, class_to_idx = find_classes(str(split_dir))
    except FileNotFoundError as exc:  # no class folder at all
        raise imagefiles.no_images(split_dir) from exc
    samples = make_dataset(str(split_dir), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    return imagefiles.from_samples(split_dir, classes, samples), samples


def _read_folder(
    split_dir: Path, samples: list[tuple[str, int]], cache_dir: str | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """An ImageFolder split of 32×32 images as one uint8 tensor (N, 3, 32, 32) and its labels, in
    :func:`mixed_order`: decoded, or read from its decoded copy under ``cache_dir``."""
    images = decoded_cache.load_or_decode(split_dir, samples, lambda: _decode(samples), cache_dir=cache_dir)
    order = mixed_order(len(samples))
    return images[order].contiguous(), torch.tensor([label for _, label in samples])[order]


def _decode(samples: list[tuple[str, int]]) -> torch.Tensor:
    """The split's images decoded in listing order (N, 3, 32, 32); raises DatasetError naming a
    file that does not decode or has another size."""
    images = []
    for path, _ in samples:
        image = np.asarray(imagefiles.load_image(path))
        if image.shape != (32, 32, 3):
            raise DatasetError(
                f"dataset.root: {path} is {image.shape[1]}×{image.shape[0]} px, CIFAR images are 32×32 "
                "(fix: resize or remove it, or use dataset=imagefolder for other sizes)"
            )
        images.append(image)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
