"""torchvision's ResNets (He et al., 2015; post-activation) as ResIST networks: instances of
``torchvision.models.ResNet`` that may hold a subset of a stage's blocks.

``tv_resnet18`` … ``tv_resnet152`` are torchvision's ``resnet18`` … ``resnet152`` (its classes and
its ``_make_layer``), with two options CIFAR users apply: ``cifar_stem`` replaces the 7×7 stride-2
stem convolution and the max-pool by one 3×3 stride-1 convolution (for 32-pixel images), and
``width`` scales every stage's width (torchvision's 64 / 128 / 256 / 512 are ``width=64``), for
networks narrow enough to train on a CPU. Stages 0..3 are ``layer1`` … ``layer4``; a stage's blocks
after its first keep their input's shape (and ``layer1``'s first one too in the basic-block
networks), so a network may leave them out (:func:`~resist.models.catalog.resnet_layout`).

A left-out block is exactly the identity, as in a pre-activation network: a torchvision block
computes ``relu(x + branch(x))`` and its input ``x`` is itself the output of a ReLU (the stem's, or
the previous block's), so ``x ≥ 0`` and a block whose branch is zero returns ``relu(x) = x``.
For the same reason ResIST's test-time scaling is exact when it scales the branch before the
addition: it multiplies the affine parameters of the branch's last BatchNorm (``bn2`` / ``bn3``),
whose output is linear in them in training and evaluation mode alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from resist.generators import seeded_global_generator
from resist.models.catalog import TORCHVISION_RESNETS, resnet_layout
from resist.models.residual_units import BlockSlots, ResidualUnits, SequentialSlots
from resist.models.spec import BlockKind
from resist.seeding import derive_seed

BLOCKS = {BlockKind.basic: BasicBlock, BlockKind.bottleneck: Bottleneck}

TORCHVISION_WIDTH = 64
"""torchvision's base width: the stem's channels and ``layer1``'s ``planes``."""


def _torchvision_init(module: nn.Module) -> None:
    """torchvision's ResNet initialisation (``ResNet.__init__``) of ``module``'s layers: Kaiming
    normal (fan out, ReLU) convolutions, BatchNorm weight 1 and bias 0 (running statistics reset),
    linear layers as ``nn.Linear`` builds them."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
            m.reset_running_stats()
        elif isinstance(m, nn.Linear):
            m.reset_parameters()


class TorchvisionResNet(ResNet, ResidualUnits):
    """``torchvision.models.ResNet`` holding all blocks, or for some stages a chosen subset
    (``held_blocks``: stage -> block indices; removable blocks only may be left out). The state
    dict of a network holding every block is torchvision's, key for key."""

    def __init__(
        self,
        name: str,
        num_classes: int,
        *,
        in_channels: int = 3,
        cifar_stem: bool = False,
        width: int = TORCHVISION_WIDTH,
        held_blocks: Mapping[int, Iterable[int]] | None = None,
    ) -> None:
        kind, layers = TORCHVISION_RESNETS[name]
        block = BLOCKS[kind]
        super().__init__(block, list(layers), num_classes=num_classes)
        self.layout = resnet_layout(name)
        held = {stage: set(ids) for stage, ids in (held_blocks or {}).items()}
        self.layout.check_held_blocks(held)
        if width != TORCHVISION_WIDTH:  # torchvision's own layers, at other widths
            self.inplanes = width
            self.bn1 = nn.BatchNorm2d(width)
            for stage, count in enumerate(layers):
                stride = 1 if stage == 0 else 2
                setattr(self, f"layer{stage + 1}", self._make_layer(block, width * 2**stage, count, stride=stride))
            self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        if cifar_stem:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        elif in_channels != 3 or width != TORCHVISION_WIDTH:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        for stage, count in enumerate(layers):
            built = getattr(self, f"layer{stage + 1}")
            ids = sorted(held.get(stage, range(count)))
            setattr(self, f"layer{stage + 1}", SequentialSlots([built[i] for i in ids], ids))

    def stage_slots(self, stage: int) -> BlockSlots:
        return cast(SequentialSlots, getattr(self, f"layer{stage + 1}"))

    def initialize(self, seed: int) -> None:
        """torchvision's initialisation, the stem, the classifier and every block from its own seed."""
        parts: list[tuple[tuple[object, ...], list[nn.Module]]] = [
            (("stem",), [self.conv1, self.bn1]),
            (("head",), [self.fc]),
        ]
        for stage in range(self.layout.num_stages):
            slots = self.stage_slots(stage)
            parts += [((stage, b), [m]) for b, m in zip(slots.block_ids, slots.slot_modules(), strict=True)]
        for labels, modules in parts:
            with seeded_global_generator(derive_seed(seed, "init", *labels)):
                for module in modules:
                    _torchvision_init(module)

    def scale_residual_branches(self, stage: int, block_ids: Iterable[int], scale: float) -> None:
        """Multiplies the weight and bias of each block's last BatchNorm (``bn2``; ``bn3`` in a
        bottleneck) by ``scale``, so the scale is part of the exported weights."""
        with torch.no_grad():
            for index in block_ids:
                block = self.block(stage, index)
                norm = block.bn3 if isinstance(block, Bottleneck) else cast(BasicBlock, block).bn2
                norm.weight.mul_(scale)
                norm.bias.mul_(scale)
