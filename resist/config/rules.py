"""The shared vocabulary of config validation (pure): the one-line error rule and the image sizes
the networks see."""

from __future__ import annotations

from resist.config.schema import ConfigError, DatasetConfig, DatasetName
from resist.models.spec import Stem

NATIVE_IMAGE_SIZE = {DatasetName.cifar10: 32, DatasetName.cifar100: 32, DatasetName.imagenet: 224}
DEFAULT_IMAGE_SIZE = {DatasetName.digits: 32, DatasetName.imagefolder: 224, DatasetName.synthetic: 32}
MIN_IMAGE_SIZE = {Stem.cifar: 8, Stem.imagenet: 32}


def image_size(dataset: DatasetConfig) -> int:
    """Side length in pixels of the images the model sees."""
    if dataset.name in NATIVE_IMAGE_SIZE:
        return NATIVE_IMAGE_SIZE[dataset.name]
    return dataset.image_size or DEFAULT_IMAGE_SIZE[dataset.name]


def require(condition: bool, key: str, *, problem: str, fix: str) -> None:
    if not condition:
        raise ConfigError(key, problem, fix)


def at_least(value: int, minimum: int, key: str, *, fix: str, why: str = "") -> None:
    """The common rule: ``key``, here ``value``, must be >= ``minimum`` (``why``: the reason, if any)."""
    require(value >= minimum, key, problem=f"must be >= {minimum}{why}, got {value}", fix=fix)
