"""Building any network of :mod:`resist.models.catalog` behind one door (:func:`build_network`):
the project's pre-activation ResNets (:mod:`resist.models.preact`), torchvision's ResNets
(:mod:`resist.models.torchvision_resnet`) and Vision Transformer
(:mod:`resist.models.vision_transformer`). The protocols reach every family through
:class:`~resist.models.residual_units.ResidualUnits` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import torch
from torch import nn

from resist.models.catalog import MODEL_FAMILIES, Family
from resist.models.preact import build_model
from resist.models.residual_units import materialize
from resist.models.spec import ARCHITECTURES, BatchNormMode
from resist.models.torchvision_resnet import TorchvisionResNet
from resist.models.vision_transformer import TorchvisionViT


class ModelOptions(Protocol):
    """What builds a network: :class:`resist.config.ModelConfig`'s fields (``arch`` and the
    options of its family)."""

    arch: str
    batchnorm: BatchNormMode
    cifar_stem: bool
    width: int
    patch_size: int


def build_network(
    model: ModelOptions,
    num_classes: int,
    *,
    in_channels: int,
    image_size: int,
    held_blocks: Mapping[int, Sequence[int]] | None = None,
    device: torch.device | str | None = None,
    init_seed: int | None = None,
) -> nn.Module:
    """The network ``model`` describes, for ``image_size``-pixel images of ``in_channels`` channels,
    holding every block or, for some stages, ``held_blocks``, on ``device`` (``"meta"``: nothing
    allocated, for shapes and counts). Modules are built on the meta device, so building draws
    nothing from torch's global generator; with ``init_seed``, weights come from the network's
    ``initialize`` (on the CPU, then moved), so they depend neither on the device nor on which
    blocks are held; without it they are left for the caller to fill (BatchNorm statistics reset)."""
    arch = model.arch
    family = MODEL_FAMILIES[arch]
    if family == Family.preact:
        return build_model(
            ARCHITECTURES[arch],
            num_classes,
            in_channels=in_channels,
            batchnorm=model.batchnorm,
            held_blocks=held_blocks,
            device=device,
            init_seed=init_seed,
        )
    with torch.device("meta"):
        if family == Family.torchvision_resnet:
            network: nn.Module = TorchvisionResNet(
                arch,
                num_classes,
                in_channels=in_channels,
                cifar_stem=model.cifar_stem,
                width=model.width,
                held_blocks=held_blocks,
            )
        else:
            network = TorchvisionViT(
                arch,
                num_classes,
                image_size=image_size,
                patch_size=model.patch_size,
                in_channels=in_channels,
                held_blocks=held_blocks,
            )
    return materialize(network, device, init_seed)
