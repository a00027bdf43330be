"""Compressed hand-offs do not drift over a paper-length run.

Real blocks of a (narrow) pre-activation ResNet are carried through 2,000 ResIST round ends at
S = 2 with minimum depth 3 of 4 blocks, so every round some blocks change holder and some are held
by both workers (averaged at their aggregator). Between round ends each holder applies an update of
the paper recipe's late-schedule size (lr 0.1 × 0.01, weight decay 5e-4, l = 50: a shrink of
2.5e-5 per round, plus noise of 3 % of the tensor's int8 step, absmax / 127), drawn from (block,
round, rank) so that the float32 and the compressed runs apply the same updates. After 2,000 hops
the compressed path stays within 0.1 × the float32 path's own movement, for int8 and bf16, and the
blocks' weight decay survives (a bf16 hand-off of the weights themselves would round it away)."""

from __future__ import annotations

import functools

import pytest
import torch

from resist.comm.backends import run_in_threads
from resist.config import Compression, DecompositionConfig, ResISTConfig
from resist.models.preact import build_model
from resist.models.spec import ARCHITECTURES, _cifar
from resist.protocols.resist import ResIST
from resist.seeding import derive_seed
from tests.helpers import unit_block

ARCH, ROUNDS, BLOCKS = "preact_resnet_drift_test", 2000, (3, 4, 5, 6)  # units: stage 2's blocks 1-4
SHRINK, NOISE = 0.1 * 0.01 * 5e-4 * 50, 0.03


@pytest.fixture(autouse=True)
def narrow_network(monkeypatch):
    """The real block classes at widths that keep 2,000 rounds quick."""
    monkeypatch.setitem(ARCHITECTURES, ARCH, _cifar(ARCH, (1, 1, 5, 1), (8, 8, 16, 8)))


def make_model(held_blocks=None, initialize=True, meta=False):
    return build_model(
        ARCHITECTURES[ARCH],
        10,
        in_channels=3,
        held_blocks=held_blocks,
        init_seed=0 if initialize and not meta else None,
        device="meta" if meta else None,
    )


def _initial_blocks() -> dict[int, list[torch.Tensor]]:
    model = make_model()
    return {b: [p.detach().clone() for p in unit_block(model, b).parameters()] for b in BLOCKS}


def _update(block: torch.nn.Module, b: int, round_index: int, rank: int, steps: list[float]) -> None:
    draws = torch.Generator().manual_seed(derive_seed(0, "drift", b, round_index, rank))
    for p, step in zip(block.parameters(), steps, strict=True):
        p.mul_(1 - SHRINK).add_(torch.randn(p.shape, generator=draws) * NOISE * step)


@functools.cache
def _carried(compress: Compression) -> dict[int, list[torch.Tensor]]:
    """Every partitioned block's parameters after ``ROUNDS`` round ends, as its holders hold them."""
    initial = _initial_blocks()
    steps = {b: [p.abs().max().item() / 127 for p in params] for b, params in initial.items()}

    def worker(comm):
        cfg = ResISTConfig(local_steps=50, compress=compress, decomposition=DecompositionConfig(min_depth=3))
        protocol = ResIST(comm, cfg, layout=ARCHITECTURES[ARCH].layout, seed=3)
        model = protocol.setup(make_model, steps_per_epoch=100)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        for round_index in range(ROUNDS):
            with torch.no_grad():
                for b in protocol.current.blocks[comm.rank]:
                    _update(unit_block(model, b), b, round_index, comm.rank, steps[b])
            protocol.end_round(optimizer, last_round=round_index == ROUNDS - 1)
        return {
            b: [p.detach().clone() for p in unit_block(model, b).parameters()]
            for b in protocol.current.blocks[comm.rank]
        }

    held: dict[int, list[torch.Tensor]] = {}
    for blocks in run_in_threads(2, worker):
        held.update(blocks)
    return held


def _flat(blocks: dict[int, list[torch.Tensor]]) -> torch.Tensor:
    return torch.cat([p.reshape(-1) for b in BLOCKS for p in blocks[b]])


@pytest.mark.slow
@pytest.mark.parametrize("compress", [Compression.int8, Compression.bf16])
def test_compressed_hand_offs_stay_within_a_tenth_of_the_float32_movement_after_2000_hops(compress):
    start, float32, compressed = _flat(_initial_blocks()), _flat(_carried(Compression.none)), _flat(_carried(compress))
    movement = (float32 - start).norm().item()
    assert movement > 0.01 * start.norm().item()  # the blocks did move (decay and noise)
    assert (compressed - float32).norm().item() <= 0.1 * movement
    # weight decay survives the hand-offs: the norm shrinks as in float32
    shrink, shrink_compressed = start.norm() - float32.norm(), start.norm() - compressed.norm()
    assert shrink > 0 and abs(shrink_compressed / shrink - 1) < 0.05
