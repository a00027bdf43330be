"""Pre-activation ResNets (He et al., 2016) built from an :class:`ArchSpec`.

Every block of a stage is addressed by its global index within that stage, and a network may hold
any subset of a stage's shape-preserving blocks: an absent block is the identity and costs
nothing. Module names carry the global index (``stages.2.blocks.7.conv1.weight``), so the state
dict of a network holding a subset is a subset of the full network's state dict, key for key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from resist.generators import seeded_global_generator
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


class Stage(nn.Module):
    """The blocks a network holds of one stage, run in ascending global index order.

    ``blocks`` are slots; ``block_ids[k]`` is the global index of the block slot ``k`` holds. A
    network holding every block has ``block_ids == range(n)``. Slots of shape-preserving blocks are
    interchangeable, so :meth:`assign` lets a slot hold another block (ResIST's sub-networks keep
    their structure, and their parameters, from round to round).
    """

    def __init__(self, blocks: Sequence[PreActBlock], block_ids: Sequence[int]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.block_ids: list[int] = []
        self.assign(block_ids)

    def assign(self, block_ids: Sequence[int]) -> None:
        """Name the blocks the slots hold from now on (ascending, one per slot)."""
        ids = list(block_ids)
        if len(ids) != len(self.blocks) or ids != sorted(set(ids)):
            raise ValueError(f"need {len(self.blocks)} ascending distinct block indices, got {ids}")
        self.block_ids = ids

    def slot_of(self, block_id: int) -> int:
        return self.block_ids.index(block_id)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class PreActResNet(nn.Module):
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
        self.spec, self.batchnorm = spec, batchnorm
        held = {stage: set(ids) for stage, ids in (held_blocks or {}).items()}
        _check_held_blocks(spec, held)
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

    def held_block_ids(self, stage: int) -> tuple[int, ...]:
        """Global indices of the blocks this network holds in ``stage``, ascending."""
        return tuple(self.stages[stage].block_ids)

    def block(self, stage: int, index: int) -> PreActBlock:
        """The block with global index ``index`` of ``stage``."""
        return self.stages[stage].blocks[self.stages[stage].slot_of(index)]

    def initialize(self, seed: int) -> None:
        """Initialise every block, and the stem and head, from its own derived seed, so that a block
        has the same initial weights in every network that holds it (no transfer needed)."""
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

    def set_residual_scale(self, stage: int, block_ids: Iterable[int], scale: float) -> None:
        """Multiply the residual branch of the given held blocks of ``stage`` by ``scale``."""
        for index in block_ids:
            self.block(stage, index).residual_scale = float(scale)

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


def _check_held_blocks(spec: ArchSpec, held: Mapping[int, set[int]]) -> None:
    for stage, ids in held.items():
        if not 0 <= stage < spec.num_stages:
            raise ValueError(f"{spec.name} has stages 0..{spec.num_stages - 1}, not {stage}")
        removable = set(spec.shape_preserving_blocks(stage))
        missing = set(range(spec.blocks_per_stage[stage])) - ids
        unknown = ids - set(range(spec.blocks_per_stage[stage]))
        if unknown:
            raise ValueError(f"{spec.name} stage {stage} has no blocks {sorted(unknown)}")
        if missing - removable:
            raise ValueError(
                f"{spec.name} stage {stage}: blocks {sorted(missing - removable)} change the shape "
                "and cannot be left out"
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
    if str(device) == "meta":
        return model
    model = model.to_empty(device="cpu")
    if init_seed is not None:
        model.initialize(init_seed)
    else:
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
    return model.to(device or "cpu")
