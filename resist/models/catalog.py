"""Every network a run can train, by name (``model.arch``): its family and its residual units, as
pure data (no torch), for config validation and the cost model; :mod:`resist.models.zoo` builds them.

Families: the project's pre-activation ResNets (:mod:`resist.models.spec`, the paper's),
torchvision's ResNets (``tv_resnet*``) and torchvision's Vision Transformer (``vit_*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from resist.models.layout import UnitLayout
from resist.models.spec import ARCHITECTURES, BlockKind, Stem


class Family(str, Enum):
    preact = "preact"
    torchvision_resnet = "torchvision_resnet"
    vision_transformer = "vision_transformer"


TORCHVISION_RESNETS: dict[str, tuple[BlockKind, tuple[int, ...]]] = {
    "tv_resnet18": (BlockKind.basic, (2, 2, 2, 2)),
    "tv_resnet34": (BlockKind.basic, (3, 4, 6, 3)),
    "tv_resnet50": (BlockKind.bottleneck, (3, 4, 6, 3)),
    "tv_resnet101": (BlockKind.bottleneck, (3, 4, 23, 3)),
    "tv_resnet152": (BlockKind.bottleneck, (3, 8, 36, 3)),
}
"""Name -> block type and blocks per stage of ``torchvision.models.resnet18`` … ``resnet152``."""


@dataclass(frozen=True)
class ViTSize:
    """``num_layers`` encoder layers of ``hidden_dim`` features, ``num_heads`` attention heads,
    MLPs of ``mlp_dim`` hidden features."""

    num_layers: int
    num_heads: int
    hidden_dim: int
    mlp_dim: int


VISION_TRANSFORMERS: dict[str, ViTSize] = {
    "vit_tiny": ViTSize(num_layers=12, num_heads=3, hidden_dim=192, mlp_dim=768),
    "vit_small": ViTSize(num_layers=12, num_heads=6, hidden_dim=384, mlp_dim=1536),
}
"""Name -> size: DeiT's tiny and small shapes (Touvron et al., 2021)."""

MODEL_FAMILIES: dict[str, Family] = {
    **{name: Family.preact for name in ARCHITECTURES},
    **{name: Family.torchvision_resnet for name in TORCHVISION_RESNETS},
    **{name: Family.vision_transformer for name in VISION_TRANSFORMERS},
}
"""Every model name and its family."""


def resnet_layout(name: str) -> UnitLayout:
    """The stages of torchvision's ResNet ``name`` (``layer1`` … ``layer4``). Every stage's blocks
    after its first keep their input's shape, and ``layer1``'s first one too in the basic-block
    networks (64 -> 64 channels, stride 1). ResIST partitions the longest stage by default:
    ``layer3``, or every stage of ResNet-18, whose stages all have two blocks (one partitionable
    each)."""
    kind, layers = TORCHVISION_RESNETS[name]
    first_keeps_shape = kind == BlockKind.basic
    removable = tuple(tuple(range(0 if s == 0 and first_keeps_shape else 1, n)) for s, n in enumerate(layers))
    longest = max(layers)
    return UnitLayout(name, layers, removable, tuple(s for s, n in enumerate(layers) if n == longest))


def vit_layout(name: str) -> UnitLayout:
    """One stage, the encoder layers; each keeps its input's shape."""
    layers = VISION_TRANSFORMERS[name].num_layers
    return UnitLayout(name, (layers,), (tuple(range(layers)),), default_stages=(0,))


def layout_of(arch: str) -> UnitLayout:
    """The residual units of the network ``arch`` names (whatever its width, stem or patch size)."""
    family = MODEL_FAMILIES[arch]
    if family == Family.preact:
        return ARCHITECTURES[arch].layout
    return resnet_layout(arch) if family == Family.torchvision_resnet else vit_layout(arch)


def built_for_small_images(arch: str, *, cifar_stem: bool) -> bool:
    """Whether the network keeps a small image's resolution at its stem (a CIFAR stem, or a ViT)."""
    family = MODEL_FAMILIES[arch]
    if family == Family.preact:
        return ARCHITECTURES[arch].stem == Stem.cifar
    return cifar_stem if family == Family.torchvision_resnet else True
