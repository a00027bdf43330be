"""The final model as an ordinary inference checkpoint of the family's plain network.

``final_model.pt`` holds ``state_dict`` (:meth:`ResidualUnits.exported_state_dict`: every block,
test-time scaling folded in), the ``model`` options that rebuild its network, ``num_classes``,
``in_channels`` and ``image_size``. For a torchvision family that state dict is torchvision's own:
it loads with ``strict=True`` into ``torchvision.models.resnet50(num_classes=…)`` (its ``conv1`` and
``maxpool`` replaced where ``cifar_stem`` or ``width`` changed them) or into the matching
``torchvision.models.VisionTransformer`` (:func:`torchvision_model` builds either).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resist.checkpoints import atomic_write
from resist.models.catalog import MODEL_FAMILIES, VISION_TRANSFORMERS, Family
from resist.models.residual_units import ResidualUnits
from resist.models.spec import BatchNormMode
from resist.models.zoo import ModelOptions, build_network


@dataclass(frozen=True)
class SavedModel:
    """The options of a saved network (:class:`~resist.models.zoo.ModelOptions`)."""

    arch: str
    batchnorm: BatchNormMode = BatchNormMode.batch_stats
    cifar_stem: bool = False
    width: int = 64
    patch_size: int = 4


def save_inference_checkpoint(
    model: nn.Module, path: Path, *, options: ModelOptions, num_classes: int, in_channels: int, image_size: int
) -> None:
    """Write ``model`` (a :class:`ResidualUnits` network holding every block, built from
    ``options``) with what rebuilds its network, atomically (a crash leaves the previous file or none)."""
    assert isinstance(model, ResidualUnits)
    buffer = io.BytesIO()
    torch.save(
        {
            "arch": options.arch,
            "batchnorm": options.batchnorm.value,
            "model": {"cifar_stem": options.cifar_stem, "width": options.width, "patch_size": options.patch_size},
            "num_classes": num_classes,
            "in_channels": in_channels,
            "image_size": image_size,
            "state_dict": model.exported_state_dict(),
        },
        buffer,
    )
    atomic_write(path, buffer.getvalue())


def _read(path: Path, device: str) -> dict[str, Any]:
    """A ``final_model.pt``, read with ``weights_only=True``: tensors and plain data only, so a file
    holding pickled code is refused (``pickle.UnpicklingError``) instead of run."""
    return torch.load(path, map_location=device, weights_only=True)


def _options(checkpoint: dict[str, Any]) -> SavedModel:
    return SavedModel(checkpoint["arch"], BatchNormMode(checkpoint["batchnorm"]), **checkpoint.get("model", {}))


def load_inference_model(path: Path, device: str = "cpu") -> nn.Module:
    """The project's network of a ``final_model.pt`` (all scales 1), in eval mode."""
    checkpoint = _read(path, device)
    model = build_network(
        _options(checkpoint),
        checkpoint["num_classes"],
        in_channels=checkpoint["in_channels"],
        image_size=checkpoint.get("image_size", 32),
        device=device,
    )
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def torchvision_model(path: Path, device: str = "cpu") -> nn.Module:
    """The plain torchvision network of a torchvision-family ``final_model.pt``, loaded with
    ``strict=True``, in eval mode: ``torchvision.models.resnet*`` (its stem replaced as the run's
    was; at another width than 64, the ``torchvision.models.ResNet`` of that width, which
    torchvision's ``resnet*`` functions cannot build) or ``torchvision.models.VisionTransformer``."""
    import torchvision

    checkpoint = _read(path, device)
    options, classes, channels = _options(checkpoint), checkpoint["num_classes"], checkpoint["in_channels"]
    family = MODEL_FAMILIES[options.arch]
    model: nn.Module
    if family == Family.torchvision_resnet:
        if options.width != 64:
            return load_inference_model(path, device)  # a torchvision ResNet, holding every block
        model = getattr(torchvision.models, options.arch.removeprefix("tv_"))(num_classes=classes)
        if options.cifar_stem:
            model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            model.maxpool = nn.Identity()
        elif channels != 3:
            model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    elif family == Family.vision_transformer:
        size = VISION_TRANSFORMERS[options.arch]
        model = torchvision.models.VisionTransformer(
            checkpoint["image_size"],
            options.patch_size,
            size.num_layers,
            size.num_heads,
            size.hidden_dim,
            size.mlp_dim,
            num_classes=classes,
        )
        if channels != 3:
            model.conv_proj = nn.Conv2d(channels, size.hidden_dim, options.patch_size, options.patch_size)
    else:
        raise ValueError(f"{path}: {options.arch} is not a torchvision network")
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    return model.to(device).eval()
