"""The residual units of a network, as ResIST sees them: a pure description (no torch).

Every model family (the project's pre-activation ResNets, torchvision's ResNets, torchvision's
Vision Transformer) groups its residual units in *stages*, each a sequence of *blocks* numbered
0..n-1 in forward order: the four stages of a ResNet, and for a ViT one stage whose blocks are the
encoder layers. A block is *removable* when its output has its input's shape, so a network may
leave it out (it then acts as the identity).

ResIST partitions *units*: the non-first blocks of one stage (``protocol.decomposition.stage``) or,
when unset, of the layout's ``default_stages``. A unit is named by one integer, its block's
position in forward order over all stages (:meth:`UnitLayout.unit`), so the decomposition policy,
the hand-off plan and the cost model deal in plain integers whatever the family.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class UnitLayout:
    """``blocks_per_stage[s]``: the blocks of stage ``s``; ``removable[s]``: those of them that keep
    their input's shape, ascending; ``default_stages``: the stages ResIST partitions by default, each
    family's rule (pre-activation ResNets: the third of four, as the paper's code; torchvision's
    ResNets: the longest stage, every stage where all are equally long, as ResNet-18's; a ViT: its
    only one)."""

    name: str
    blocks_per_stage: tuple[int, ...]
    removable: tuple[tuple[int, ...], ...]
    default_stages: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.removable) != len(self.blocks_per_stage):
            raise ValueError(f"{self.name}: one removable tuple per stage")
        if not self.default_stages or not all(0 <= s < self.num_stages for s in self.default_stages):
            raise ValueError(f"{self.name}: default stages {self.default_stages} are not stages")
        for stage in range(self.num_stages):
            if not set(self.partitionable_blocks(stage)) <= set(self.removable[stage]):
                raise ValueError(f"{self.name} stage {stage}: a non-first block changes the shape")

    @property
    def num_stages(self) -> int:
        return len(self.blocks_per_stage)

    def unit(self, stage: int, block: int) -> int:
        """The unit number of block ``block`` of ``stage``: its position over all stages."""
        return sum(self.blocks_per_stage[:stage]) + block

    def locate(self, unit: int) -> tuple[int, int]:
        """The (stage, block) of unit number ``unit``."""
        for stage, count in enumerate(self.blocks_per_stage):
            if unit < count:
                return stage, unit
            unit -= count
        raise ValueError(f"{self.name} has no unit {unit}")

    def partitioned_units(self, stage: int | None) -> tuple[int, ...]:
        """The units ResIST partitions: the partitionable blocks of ``stage`` (None: of every default
        stage), ascending."""
        stages = self.default_stages if stage is None else (stage,)
        return tuple(self.unit(s, b) for s in sorted(stages) for b in self.partitionable_blocks(s))

    def by_stage(self, units: Iterable[int]) -> dict[int, list[int]]:
        """``units`` as stage -> their blocks' indices in it, stages and blocks ascending."""
        grouped: dict[int, list[int]] = {}
        for stage, block in sorted(map(self.locate, units)):
            grouped.setdefault(stage, []).append(block)
        return grouped

    def held_blocks(self, partitioned: tuple[int, ...], own: tuple[int, ...]) -> dict[int, list[int]]:
        """What a sub-network holding the partitioned units ``own`` of ``partitioned`` builds of each
        stage with partitioned units (stage -> its blocks, ascending); other stages are whole."""
        left_out = set(partitioned) - set(own)
        return {
            s: [b for b in range(self.blocks_per_stage[s]) if self.unit(s, b) not in left_out]
            for s in self.by_stage(partitioned)
        }

    def partitionable_blocks(self, stage: int) -> tuple[int, ...]:
        """ResIST's partitionable blocks of ``stage``: every block but the first, which stays shared
        (the paper's rule; each of them is removable in every family here)."""
        return tuple(range(1, self.blocks_per_stage[stage]))

    def check_held_blocks(self, held: Mapping[int, set[int]]) -> None:
        """Raise ValueError unless ``held`` (stage -> the blocks a network builds of it) names real
        stages and blocks and leaves out removable blocks only."""
        for stage, ids in held.items():
            if not 0 <= stage < self.num_stages:
                raise ValueError(f"{self.name} has stages 0..{self.num_stages - 1}, not {stage}")
            everything = set(range(self.blocks_per_stage[stage]))
            if unknown := ids - everything:
                raise ValueError(f"{self.name} stage {stage} has no blocks {sorted(unknown)}")
            if fixed := (everything - ids) - set(self.removable[stage]):
                raise ValueError(
                    f"{self.name} stage {stage}: blocks {sorted(fixed)} change the shape and cannot be left out"
                )
