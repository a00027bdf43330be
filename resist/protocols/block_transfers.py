"""ResIST's float32 block transfers: whole blocks exchanged at a round end (:func:`send_blocks`), and
the global model assembled for evaluation on every worker from the workers' sub-networks, only while
it is evaluated (:func:`assemble_global_model`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from resist.comm import Comm, Purpose
from resist.decomposition import Assignment
from resist.decomposition.transfers import Transfers, eval_gather_plan, receives_of, sends_of
from resist.models.residual_units import ResidualUnits
from resist.protocols.base import copy_common_state, model_state_tensors


def assemble_global_model(
    full: nn.Module, sub_network: nn.Module, comm: Comm, *, current: Assignment, scale: float
) -> None:
    """Fill ``full`` (an uninitialised network with every block) on the worker of ``comm``: the
    shared layers and its own blocks from its ``sub_network``, the other partitioned blocks of
    ``current`` from their lowest-ranked holder (billed to ``eval``), then scale the partitioned
    blocks' residual branches by ``scale`` (``max(1/S, m/n)``, or 1), as the family scales them."""
    assert isinstance(full, ResidualUnits)
    layout, rank = full.layout, comm.rank
    partitioned = sorted({b for own in current.blocks for b in own})  # every partitioned block has a holder
    copy_common_state(full, sub_network)
    with torch.no_grad():
        plan = eval_gather_plan(current, partitioned)

        def tensors(blocks: tuple[int, ...]) -> list[torch.Tensor]:
            return [t for b in blocks for t in model_state_tensors(full.block(*layout.locate(b)))]

        comm.exchange(
            [(peer, tensors(blocks)) for peer, blocks in sends_of(plan, rank)],
            [(peer, tensors(blocks)) for peer, blocks in receives_of(plan, rank)],
            Purpose.eval,
        )
    for stage, blocks in layout.by_stage(partitioned).items():
        full.scale_residual_branches(stage, blocks, scale)


def send_blocks(
    comm: Comm,
    transfers: Transfers,
    *,
    tensors: Callable[[int], list[torch.Tensor]],
    fresh: Callable[[int], list[torch.Tensor]],
) -> dict[tuple[int, int], list[torch.Tensor]]:
    """One exchange of whole blocks in float32 (billed to ``handoff``): the worker of ``comm`` sends
    ``tensors(b)`` of its blocks in ``transfers`` and receives its blocks into ``fresh(b)`` tensors,
    returned per (sender, block)."""
    rank = comm.rank
    inbox = {(peer, b): fresh(b) for peer, blocks in receives_of(transfers, rank) for b in blocks}
    comm.exchange(
        [(peer, [t for b in blocks for t in tensors(b)]) for peer, blocks in sends_of(transfers, rank)],
        [(peer, [t for b in blocks for t in inbox[(peer, b)]]) for peer, blocks in receives_of(transfers, rank)],
        Purpose.handoff,
    )
    return inbox
