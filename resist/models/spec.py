"""Architecture specifications: pure descriptions of the pre-activation ResNets (no torch).

A spec fixes the stem, the block type and the number of blocks per stage. Blocks of a stage are
numbered 0..n-1 in forward order; block 0 of every stage after the first changes the resolution or
width, every other block keeps its input shape, so it can be left out (acting as the identity).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from resist.models.layout import UnitLayout


class BatchNormMode(str, Enum):
    """``batch_stats``: normalise with batch statistics in train and eval (the paper's code,
    ``track_running_stats=False``, no buffers); ``running_stats``: standard running averages."""

    batch_stats = "batch_stats"
    running_stats = "running_stats"


class Stem(str, Enum):
    """``cifar``: one 3×3 stride-1 conv, no pooling, no final BN (the paper's network);
    ``imagenet``: 7×7 stride-2 conv + BN + ReLU + 3×3 max-pool, final BN-ReLU before pooling."""

    cifar = "cifar"
    imagenet = "imagenet"


class BlockKind(str, Enum):
    """``basic``: two 3×3 convs (expansion 1); ``bottleneck``: 1×1, 3×3, 1×1 convs (expansion 4)."""

    basic = "basic"
    bottleneck = "bottleneck"


STAGE_STRIDES = (1, 2, 2, 2)


@dataclass(frozen=True)
class ArchSpec:
    name: str
    stem: Stem
    block: BlockKind
    blocks_per_stage: tuple[int, ...]
    widths: tuple[int, ...] = (64, 128, 256, 512)

    @property
    def expansion(self) -> int:
        return 4 if self.block == BlockKind.bottleneck else 1

    @property
    def num_stages(self) -> int:
        return len(self.blocks_per_stage)

    @property
    def stem_channels(self) -> int:
        return self.widths[0]

    def shape_preserving_blocks(self, stage: int) -> tuple[int, ...]:
        """Blocks of ``stage`` whose output has the shape of their input (all but block 0, and
        block 0 too when it changes neither stride nor width)."""
        first_keeps_shape = stage == 0 and self.stem_channels == self.widths[0] * self.expansion
        start = 0 if first_keeps_shape else 1
        return tuple(range(start, self.blocks_per_stage[stage]))

    @property
    def layout(self) -> UnitLayout:
        """The network's residual units; ResIST partitions the third of four stages by default (the
        long one)."""
        removable = tuple(self.shape_preserving_blocks(s) for s in range(self.num_stages))
        return UnitLayout(self.name, self.blocks_per_stage, removable, default_stages=(self.num_stages - 2,))


def _cifar(name: str, blocks: tuple[int, ...], widths: tuple[int, ...] = (64, 128, 256, 512)) -> ArchSpec:
    return ArchSpec(name, Stem.cifar, BlockKind.basic, blocks, widths)


def _imagenet(name: str, blocks: tuple[int, ...]) -> ArchSpec:
    return ArchSpec(name, Stem.imagenet, BlockKind.bottleneck, blocks)


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        # CIFAR-style basic-block networks; 101/152/200 are the paper's (named by their block counts).
        _cifar("preact_resnet101", (3, 4, 23, 3)),
        _cifar("preact_resnet152", (3, 4, 36, 3)),
        _cifar("preact_resnet200", (3, 4, 50, 3)),
        _cifar("preact_resnet18", (2, 2, 2, 2)),
        _cifar("preact_resnet34", (3, 4, 6, 3)),
        _cifar("preact_resnet18_narrow", (2, 2, 2, 2), (16, 32, 64, 128)),
        # Small CPU networks whose third stage is long enough to partition among a few workers.
        _cifar("preact_resnet_mini", (1, 1, 5, 1), (16, 32, 64, 128)),
        _cifar("preact_resnet_mini_deep", (1, 1, 9, 1), (16, 32, 64, 128)),
        # ImageNet-style bottleneck networks (He et al., 2016, identity mappings).
        _imagenet("imagenet_preact_resnet50", (3, 4, 6, 3)),
        _imagenet("imagenet_preact_resnet101", (3, 4, 23, 3)),
        _imagenet("imagenet_preact_resnet152", (3, 8, 36, 3)),
        _imagenet("imagenet_preact_resnet200", (3, 24, 36, 3)),
    )
}
