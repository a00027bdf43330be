"""Dataset readers: digits (embedded), CIFAR-10/100 (torchvision pickle or ImageFolder layout),
ImageNet / any ImageFolder tree, and seeded synthetic tensors.

Every reader returns a :class:`DataSplits`. A missing or malformed dataset raises
:class:`DatasetError` whose message is one line naming the path, the layout expected and how to get
the data; :func:`check_available` runs the same checks without reading any image, so the launcher
can fail before a worker starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision import datasets as tv_datasets
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset, pil_loader
from torchvision.transforms import v2

from resist.config import DatasetConfig, DatasetName, image_size
from resist.errors import UserError
from resist.generators import seeded_global_generator
from resist.seeding import derive_seed

log = logging.getLogger(__name__)

Transform = Callable[[torch.Tensor], torch.Tensor]

CIFAR_STATS = {
    # The paper's normalisation constants (its data.py).
    DatasetName.cifar10: ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    DatasetName.cifar100: ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276)),
}
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_PICKLE_DIRS = {DatasetName.cifar10: "cifar-10-batches-py", DatasetName.cifar100: "cifar-100-python"}
_TORCHVISION_CIFAR = {DatasetName.cifar10: tv_datasets.CIFAR10, DatasetName.cifar100: tv_datasets.CIFAR100}
_SHARED_CIFAR10_HINT = "offline: extract a cifar10-jpg.tar.gz (CIFAR-10 as class folders) into data/cifar10"


class DatasetError(UserError, FileNotFoundError):
    """A dataset that is missing or not laid out as expected; ``str()`` is one line."""


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
    generator: they run under :func:`resist.seeding.seeded_global_generator`)."""

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

    def __init__(self, num_samples: int, shape: tuple[int, int, int], num_classes: int, seed: int, split: str):
        self.num_samples, self.shape, self.num_classes = num_samples, shape, num_classes
        self.base_seed = derive_seed(seed, "synthetic", split)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.base_seed + index)
        label = int(torch.randint(self.num_classes, (), generator=g))
        return torch.randn(self.shape, generator=g), label


# ---------------------------------------------------------------------------------------------
# Availability checks (no image is read)
# ---------------------------------------------------------------------------------------------


def cifar_layout(cfg: DatasetConfig) -> str:
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


def _split_dirs(cfg: DatasetConfig) -> tuple[Path, Path]:
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


def check_available(cfg: DatasetConfig) -> None:
    """Raise :class:`DatasetError` if ``cfg`` names data that is not where it says."""
    if cfg.name in _PICKLE_DIRS:
        cifar_layout(cfg)
    elif cfg.name in (DatasetName.imagenet, DatasetName.imagefolder):
        _split_dirs(cfg)


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------


def load(cfg: DatasetConfig, seed: int) -> DataSplits:
    """Read the dataset ``cfg`` names (``seed`` drives synthetic data only)."""
    check_available(cfg)
    readers = {
        DatasetName.digits: _digits,
        DatasetName.cifar10: _cifar,
        DatasetName.cifar100: _cifar,
        DatasetName.imagenet: _image_folder,
        DatasetName.imagefolder: _image_folder,
        DatasetName.synthetic: lambda c: _synthetic(c, seed),
    }
    splits = readers[cfg.name](cfg)
    log.info("data: %s", splits.description)
    return splits


def _digits(cfg: DatasetConfig) -> DataSplits:
    """scikit-learn's 8×8 handwritten digits (1,797 images, bundled with the package), resized to
    ``image_size`` and split 80/20 (stratified, fixed)."""
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
    augment = v2.RandomCrop(size, padding=size // 8) if cfg.augment else None
    return DataSplits(
        train=SeededAugmentation(TensorImages(images[train_idx], labels[train_idx]), augment),
        test=TensorImages(images[test_idx], labels[test_idx]),
        num_classes=10,
        in_channels=1,
        description=f"digits (scikit-learn): {len(train_idx)} train / {len(test_idx)} test, {size}×{size} px",
    )


def _cifar(cfg: DatasetConfig) -> DataSplits:
    layout = cifar_layout(cfg)
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


def mixed_order(num_samples: int) -> torch.Tensor:
    """A fixed permutation (the same on every machine and for every seed) that puts a class-sorted
    folder split in mixed-class order, as torchvision's CIFAR pickles are. Evaluation batches must
    mix classes: with batch-statistics BatchNorm, a batch of one class is normalised to uninformative
    features."""
    return torch.randperm(num_samples, generator=torch.Generator().manual_seed(derive_seed(0, "folder-order")))


def _decode_folder(split_dir: Path) -> tuple[list[str], tuple[torch.Tensor, torch.Tensor]]:
    """Decode an ImageFolder split of equally sized images into one uint8 tensor (N, 3, H, W), in
    :func:`mixed_order`."""
    classes, class_to_idx = find_classes(str(split_dir))
    samples = make_dataset(str(split_dir), class_to_idx, extensions=IMG_EXTENSIONS)
    images = np.stack([np.asarray(pil_loader(path)) for path, _ in samples])
    order = mixed_order(len(samples))
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2)[order].contiguous()
    return classes, (tensor, torch.tensor([label for _, label in samples])[order])


def _image_folder(cfg: DatasetConfig) -> DataSplits:
    """ImageNet-style trees decoded from disk per sample: RandomResizedCrop + flip for training,
    resize to 8/7 of the size + center crop for evaluation (256/224 at the default 224)."""
    train_dir, test_dir = _split_dirs(cfg)
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


def _synthetic(cfg: DatasetConfig, seed: int) -> DataSplits:
    size = image_size(cfg)
    shape = (cfg.channels, size, size)
    assert cfg.num_classes is not None  # validated
    return DataSplits(
        train=SeededAugmentation(SyntheticImages(cfg.num_train_samples, shape, cfg.num_classes, seed, "train")),
        test=SyntheticImages(cfg.num_test_samples, shape, cfg.num_classes, seed, "test"),
        num_classes=cfg.num_classes,
        in_channels=cfg.channels,
        description=f"synthetic: {cfg.num_train_samples} train / {cfg.num_test_samples} test, shape {shape}",
    )
