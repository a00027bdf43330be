"""``dataset.augment``: the policies, ``auto``'s resolution, the digits and synthetic readers, and
the policy each dataset option of conf/ selects."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from resist.config import (
    AugmentPolicy,
    Config,
    DatasetConfig,
    DatasetName,
    register_schemas,
    to_typed_config,
)
from resist.config.hydra_door import one_line
from resist.data import augment, sources

CONF = Path(__file__).resolve().parents[2] / "conf"


def _compose(*overrides: str) -> Config:
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return to_typed_config(compose("config", overrides=list(overrides)))


@pytest.mark.parametrize(
    ("cfg", "resolved"),
    [
        (DatasetConfig(name=DatasetName.imagefolder, image_size=95), AugmentPolicy.crop_flip),
        (DatasetConfig(name=DatasetName.imagefolder, image_size=96), AugmentPolicy.resized_crop_flip),
        (DatasetConfig(name=DatasetName.imagefolder), AugmentPolicy.resized_crop_flip),  # 224 by default
        (DatasetConfig(name=DatasetName.cifar10), AugmentPolicy.crop_flip),
        (DatasetConfig(name=DatasetName.imagenet), AugmentPolicy.resized_crop_flip),
        (DatasetConfig(name=DatasetName.digits), AugmentPolicy.crop_flip),
        (DatasetConfig(name=DatasetName.imagenet, augment=AugmentPolicy.none), AugmentPolicy.none),
        (
            DatasetConfig(name=DatasetName.cifar10, augment=AugmentPolicy.resized_crop_flip),
            AugmentPolicy.resized_crop_flip,
        ),
    ],
)
def test_auto_resolves_by_image_size(cfg, resolved):
    assert DatasetConfig().augment == AugmentPolicy.auto
    assert augment.resolve(cfg) == resolved


@pytest.mark.parametrize(
    ("option", "policy"),
    [
        ("digits", "crop_flip"),
        ("cifar10", "crop_flip"),
        ("cifar100", "crop_flip"),
        ("imagenet", "resized_crop_flip"),
        ("imagefolder", "auto"),
        ("synthetic", "none"),
    ],
)
def test_each_dataset_option_keeps_its_augmentation(option, policy):
    cfg = _compose(f"dataset={option}", "dataset.root=some/where")
    assert cfg.dataset.augment == AugmentPolicy(policy)
    assert _compose("+experiment=imagenette_sample").dataset.augment == AugmentPolicy.resized_crop_flip


def test_the_policy_is_set_on_the_command_line():
    assert _compose("dataset.augment=none").dataset.augment == AugmentPolicy.none
    with pytest.raises(Exception) as info:  # the former boolean: Hydra's error, rendered on one line
        _compose("dataset.augment=true")
    message = one_line(info.value)
    assert message is not None and "\n" not in message and "dataset.augment" in message and "crop_flip" in message


def test_digits_crop_without_flips():
    size = 16
    crop = sources.load(DatasetConfig(name=DatasetName.digits, image_size=size), seed=0)
    plain = sources.load(DatasetConfig(name=DatasetName.digits, image_size=size, augment=AugmentPolicy.none), seed=0)
    assert "augment crop_flip (no flips)" in crop.description
    image = crop.train.base.images[0]
    padded = torch.nn.functional.pad(image, (2, 2, 2, 2))  # size // 8
    windows = [padded[:, i : i + size, j : j + size] for i in range(5) for j in range(5)]
    augmented = [crop.train[(0, seed)][0] for seed in range(16)]
    assert all(any(torch.equal(a, w) for w in windows) for a in augmented)  # never a mirrored window
    assert all(torch.equal(a, crop.train[(0, seed)][0]) for seed, a in enumerate(augmented))
    assert len({a.sum().item() for a in augmented}) > 1
    assert all(torch.equal(plain.train[(0, seed)][0], image) for seed in range(4))
    resized = sources.load(
        DatasetConfig(name=DatasetName.digits, image_size=size, augment=AugmentPolicy.resized_crop_flip), seed=0
    )
    assert resized.train[(0, 3)][0].shape == (1, size, size)


def test_synthetic_data_is_never_augmented():
    for policy in AugmentPolicy:
        cfg = DatasetConfig(name=DatasetName.synthetic, num_classes=10, augment=policy, num_train_samples=4)
        data = sources.load(cfg, seed=0)
        assert torch.equal(data.train[(0, 1)][0], data.train[(0, 2)][0])
