"""Pre-activation ResNets (He et al., 2016) built from an :class:`ArchSpec`.

Every block of a stage is addressed by its index within that stage, and a network may hold any
subset of a stage's shape-preserving blocks (:mod:`resist.models.residual_units`): an absent block is the
identity and costs nothing. Module names carry slot indices (``stages.2.blocks.7.conv1.weight``),
the blocks' indices in a network that holds every block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from resist.generators import seeded_global_generator
from resist.models.residual_units import BlockSlots, ResidualUnits, materialize
from resist.models.spec import STAGE_STRIDES, ArchSpec, BatchNormMode, BlockKind, Stem
from resist.seeding import derive_seed


def _norm(channels: int, mode: BatchNormMode) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, track_running_stats=mode == BatchNormMode.running_stats)


def _conv(in_channels: int, out_channels: int, *, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False)


class PreActBlock(nn.Module):
    """A pre-activation residual block: ``shortcut(x) + residual_scale * branch(x)``.

    The shortcut is the identity, or a 1×1 conv applied to the pre-activated input when the block
    changes stride or width (as in the paper's code). ``residual_scale`` multiplies the residual
    branch only; ResIST sets it at test time on partitioned blocks.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.shortcut = (
            _conv(in_channels, out_channels, kernel=1, stride=stride)
            if stride != 1 or in_channels != out_channels
            else None
        )
        self.residual_scale = 1.0

    def branch(self, activated: torch.Tensor) -> torch.Tensor:
        """The residual branch applied to the pre-activated input ``relu(bn1(x))``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(activated)
        out = self.branch(activated)
        if self.residual_scale != 1.0:
            out = out * self.residual_scale
        return shortcut + out


class PreActBasicBlock(PreActBlock):
    """BN-ReLU-conv3×3(stride)-BN-ReLU-conv3×3; expansion 1."""

    def __init__(self, in_channels: int, width: int, *, stride: int, bn: BatchNormMode) -> None:
        super().__init__(in_channels, width, stride)
        self.bn1 = _norm(in_channels, bn)
        self.conv1 = _conv(in_channels, width, kernel=3, stride=stride)
        self.bn2 = _norm(width, bn)
        self.conv2 = _conv(width, width, kernel=3)

    def branch(self, activated: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.bn2(self.conv1(activated))))


class PreActBottleneck(PreActBlock):
    """BN-ReLU-conv1×1-BN-ReLU-conv3×3(stride)-BN-ReLU-conv1×1(4× width); expansion 4."""

    def __init__(self, in_channels: int, width: int, *, stride: int, bn: BatchNormMode) -> None:
        super().__init__(in_channels, width * 4, stride)
        self.bn1 = _norm(in_channels, bn)
        self.conv1 = _conv(in_channels, width, kernel=1)
        self.bn2 = _norm(width, bn)
        self.conv2 = _conv(width, width, kernel=3, stride=stride)
        self.bn3 = _norm(width, bn)
        self.conv3 = _conv(width, width * 4, kernel=1)

    def branch(self, activated: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.bn2(self.conv1(activated))))
        return self.conv3(F.relu(self.bn3(out)))


class Stage(nn.Module, BlockSlots):
    """The blocks a network holds of one stage (``blocks``, slot by slot), run in slot order."""

    def __init__(self, blocks: Sequence[PreActBlock], block_ids: Sequence[int]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.block_ids: list[int] = []
        self.assign(block_ids)

    def slot_modules(self) -> Sequence[nn.Module]:
        return list(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class PreActResNet(nn.Module, ResidualUnits):
    """A pre-activation ResNet holding all blocks, or a chosen subset of some stages' blocks.

    Args:
        spec: the architecture.
        num_classes: classifier outputs.
        in_channels: image channels.
        batchnorm: batch statistics only (the paper) or running statistics.
        held_blocks: stage index -> global indices of the blocks to build in that stage; stages
            not named hold all their blocks. Only shape-preserving blocks may be left out.

    Parameter names of stage blocks use slot indices (``stages.2.blocks.<slot>``), equal to the
    global indices in a network that holds every block.
    """

    def __init__(
        self,
        spec: ArchSpec,
        num_classes: int,
        *,
        in_channels: int = 3,
        batchnorm: BatchNormMode = BatchNormMode.batch_stats,
        held_blocks: Mapping[int, Iterable[int]] | None = None,
    ) -> None:
        super().__init__()
        self.spec, self.batchnorm, self.layout = spec, batchnorm, spec.layout
        held = {stage: set(ids) for stage, ids in (held_blocks or {}).items()}
        self.layout.check_held_blocks(held)
        self.stem = _stem(spec, in_channels, batchnorm)
        block_type = PreActBottleneck if spec.block == BlockKind.bottleneck else PreActBasicBlock
        stages, channels = [], spec.stem_channels
        for stage, (num_blocks, width) in enumerate(zip(spec.blocks_per_stage, spec.widths, strict=True)):
            wanted = sorted(held.get(stage, range(num_blocks)))
            blocks = []
            for index in range(num_blocks):
                stride = STAGE_STRIDES[stage] if index == 0 else 1
                if index in wanted:
                    blocks.append(block_type(channels, width, stride=stride, bn=batchnorm))
                channels = width * spec.expansion
            stages.append(Stage(blocks, wanted))
        self.stages = nn.ModuleList(stages)
        self.head_norm = _norm(channels, batchnorm) if spec.stem == Stem.imagenet else None
        self.classifier = nn.Linear(channels, num_classes)

    def stage_slots(self, stage: int) -> BlockSlots:
        return cast(Stage, self.stages[stage])

    def initialize(self, seed: int) -> None:
        """Every block, the stem and the head from their own derived seeds, by ``reset_parameters``."""
        parts: list[tuple[tuple[object, ...], nn.Module]] = [(("stem",), self.stem), (("head",), self.classifier)]
        if self.head_norm is not None:
            parts.append((("head_norm",), self.head_norm))
        for stage_index, stage in enumerate(self.stages):
            parts += [
                ((stage_index, block_id), block) for block_id, block in zip(stage.block_ids, stage.blocks, strict=True)
            ]
        for labels, module in parts:
            with seeded_global_generator(derive_seed(seed, "init", *labels)):
                for submodule in module.modules():
                    if hasattr(submodule, "reset_parameters"):
                        submodule.reset_parameters()

    def scale_residual_branches(self, stage: int, block_ids: Iterable[int], scale: float) -> None:
        """Sets the blocks' ``residual_scale``, which multiplies their branch's output."""
        for index in block_ids:
            cast(PreActBlock, self.block(stage, index)).residual_scale = float(scale)

    def exported_state_dict(self) -> dict[str, torch.Tensor]:
        """Every block's residual scale folded into the last convolution of its branch (exact: the
        branch is linear in that weight), so the plain network, all scales 1, computes the same."""
        state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        for name, module in self.named_modules():
            if isinstance(module, PreActBlock) and module.residual_scale != 1.0:
                last = "conv3" if isinstance(module, PreActBottleneck) else "conv2"
                state[f"{name}.{last}.weight"] *= module.residual_scale
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        if self.head_norm is not None:
            x = F.relu(self.head_norm(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)


def _stem(spec: ArchSpec, in_channels: int, bn: BatchNormMode) -> nn.Module:
    if spec.stem == Stem.cifar:
        return _conv(in_channels, spec.stem_channels, kernel=3)
    return nn.Sequential(
        _conv(in_channels, spec.stem_channels, kernel=7, stride=2),
        _norm(spec.stem_channels, bn),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_model(
    spec: ArchSpec,
    num_classes: int,
    *,
    in_channels: int = 3,
    batchnorm: BatchNormMode = BatchNormMode.batch_stats,
    held_blocks: Mapping[int, Sequence[int]] | None = None,
    device: torch.device | str | None = None,
    init_seed: int | None = None,
) -> PreActResNet:
    """Build a network on ``device`` (``"meta"`` allocates nothing: use it to count parameters).

    The modules are constructed on the meta device, so building draws nothing from torch's global
    generator. With ``init_seed``, weights come from :meth:`PreActResNet.initialize` (on the CPU,
    then moved), so they do not depend on the device, on global RNG state, or on which blocks are
    held; without it, parameters are left uninitialised (for the caller to fill) and BatchNorm
    statistics are reset.
    """
    with torch.device("meta"):
        model = PreActResNet(spec, num_classes, in_channels=in_channels, batchnorm=batchnorm, held_blocks=held_blocks)
    return cast(PreActResNet, materialize(model, device, init_seed))
