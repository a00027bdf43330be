"""The one interface ResIST and the other protocols use to reach a network's residual blocks.

A network (:class:`ResidualUnits`) holds, of every stage of its :class:`~resist.models.layout.UnitLayout`,
some blocks in *slots* (:class:`BlockSlots`): all of them, or a chosen subset of the removable ones
(a ResIST sub-network). Slots of a stage's removable blocks are interchangeable, so a slot may hold
another block from round to round (:meth:`BlockSlots.assign`) and a sub-network keeps its modules,
and their parameters, for the whole run. Parameter names carry slot indices, equal to the blocks'
indices in a network that holds every block, so the full network's state dict is its family's
usual one, key for key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from resist.models.layout import UnitLayout


class BlockSlots:
    """The blocks a network holds of one stage, in slots: ``block_ids[k]`` is the index (within
    the stage) of the block slot ``k`` holds, ascending, so the slots run in forward order."""

    block_ids: list[int]

    def slot_modules(self) -> Sequence[nn.Module]:
        """The modules in the slots, slot by slot."""
        raise NotImplementedError

    def assign(self, block_ids: Sequence[int]) -> None:
        """Name the blocks the slots hold from now on (ascending, one per slot)."""
        ids = list(block_ids)
        if len(ids) != len(self.slot_modules()) or ids != sorted(set(ids)):
            raise ValueError(f"need {len(self.slot_modules())} ascending distinct block indices, got {ids}")
        self.block_ids = ids

    def slot_of(self, block_id: int) -> int:
        return self.block_ids.index(block_id)

    def block(self, block_id: int) -> nn.Module:
        """The module holding block ``block_id``."""
        return self.slot_modules()[self.slot_of(block_id)]


class SequentialSlots(nn.Sequential, BlockSlots):
    """A stage as an ``nn.Sequential`` of held blocks, child ``f"{prefix}{slot}"`` in slot order:
    with every block held, exactly the ``nn.Sequential`` torchvision builds (``layer3.0``, …;
    ``encoder_layer_0``, …), so state dict keys are torchvision's."""

    def __init__(self, blocks: Sequence[nn.Module], block_ids: Sequence[int], *, prefix: str = "") -> None:
        super().__init__(OrderedDict((f"{prefix}{slot}", block) for slot, block in enumerate(blocks)))
        self.block_ids = []
        self.assign(block_ids)

    def slot_modules(self) -> Sequence[nn.Module]:
        return list(self.children())


class ResidualUnits(ABC):
    """Mixin for an ``nn.Module`` network made of residual blocks in stages (see the module doc)."""

    layout: UnitLayout

    @abstractmethod
    def stage_slots(self, stage: int) -> BlockSlots:
        """The slots of ``stage``."""

    @abstractmethod
    def initialize(self, seed: int) -> None:
        """Initialise every block, and every layer outside the stages, from its own seed derived
        from ``seed``, so a block starts from the same weights in every network that holds it
        (no transfer needed), whichever blocks are held."""

    @abstractmethod
    def scale_residual_branches(self, stage: int, block_ids: Iterable[int], scale: float) -> None:
        """Multiply the residual branch output of the given held blocks of ``stage`` by ``scale``
        (ResIST's test-time scaling), exactly; applied once, to a model assembled for evaluation."""

    def held_block_ids(self, stage: int) -> tuple[int, ...]:
        """Indices of the blocks this network holds in ``stage``, ascending."""
        return tuple(self.stage_slots(stage).block_ids)

    def block(self, stage: int, index: int) -> nn.Module:
        """The block with index ``index`` of ``stage``."""
        return self.stage_slots(stage).block(index)

    def exported_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict of the family's plain network computing the same function (any residual
        scale folded into the weights), detached copies."""
        assert isinstance(self, nn.Module)
        return {k: v.detach().clone() for k, v in self.state_dict().items()}


def materialize(network: nn.Module, device: torch.device | str | None, init_seed: int | None) -> nn.Module:
    """``network``, built on the meta device, on ``device`` (``"meta"``: returned as it is): its
    weights from ``initialize(init_seed)`` on the CPU, then moved, so they depend neither on the
    device nor on global generator state; without ``init_seed`` left for the caller to fill
    (BatchNorm statistics reset)."""
    if str(device) == "meta":
        return network
    network = network.to_empty(device="cpu")
    assert isinstance(network, ResidualUnits)
    if init_seed is not None:
        network.initialize(init_seed)
    else:
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.reset_running_stats()
    return network.to(device or "cpu")
