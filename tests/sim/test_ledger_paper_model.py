"""Ledger == cost model, exactly, for the paper's PreActResNet-101 (P = 41,350,730) at S = 2, 4, 8.

Each check runs one synchronisation (no training): local SGD's parameter all-reduce, the paper
code's reduce+broadcast variant, and one DDP backward pass.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from resist.comm import Op, Purpose
from resist.comm.backends import run_in_threads
from resist.config import DDPConfig, DecompositionConfig, LocalSGDConfig, ResISTConfig
from resist.models.catalog import layout_of
from resist.models.preact import build_model, count_parameters
from resist.models.spec import ARCHITECTURES
from resist.paper import TABLE1_GB, TABLE1_MIN_DEPTH, table1_bytes_per_round
from resist.protocols.ddp import DataParallel
from resist.protocols.local_sgd import LocalSGD
from tests.helpers import fixed

P = 41_350_730
P_BLOCK = 1_180_672
P_PARTITIONED = 22 * P_BLOCK
SPEC = ARCHITECTURES["preact_resnet101"]


def _model():
    model = build_model(SPEC, 10, init_seed=0)  # the same weights on every worker, as a run builds them
    assert count_parameters(model) == P
    return model


@pytest.mark.parametrize("workers", [2, 4, 8])
def test_local_sgd_sync_bytes(workers):
    def worker(comm):
        protocol = LocalSGD(comm, LocalSGDConfig(), seed=0)
        model = protocol.setup(fixed(_model()), steps_per_epoch=100)
        protocol.end_round(torch.optim.SGD(model.parameters(), lr=0.1))
        return comm.ledger

    for ledger in run_in_threads(workers, worker, timeout_s=600):
        sync, init = ledger.cumulative[Purpose.train_sync], ledger.cumulative[Purpose.init]
        assert (sync.payload_bytes, sync.operations) == (P * 4, 1)
        assert sync.wire_bytes == 2 * (workers - 1) / workers * P * 4
        assert (init.payload_bytes, init.wire_bytes) == (32, (workers - 1) * 32)  # a digest, not the weights


@pytest.mark.parametrize("workers", [2, 4])
def test_paper_style_local_sgd_sync_bytes(workers):
    def worker(comm):
        protocol = LocalSGD(comm, LocalSGDConfig(paper_style=True), seed=0)
        model = protocol.setup(fixed(_model()), steps_per_epoch=100)
        protocol.end_round(torch.optim.SGD(model.parameters(), lr=0.1))
        return [
            (e.op, e.payload_bytes, e.wire_bytes) for e in comm.ledger.round_entries if e.purpose == Purpose.train_sync
        ]

    shared, part = (P - P_PARTITIONED) * 4, P_PARTITIONED * 4
    for rank, entries in enumerate(run_in_threads(workers, worker, timeout_s=600)):
        assert entries == [
            (Op.all_reduce, shared, 2 * (workers - 1) / workers * shared),
            (Op.reduce, part, 0.0 if rank == 0 else float(part)),
            (Op.broadcast, part, float(part) if rank < workers - 1 else 0.0),  # pipelined: the last relays nothing
        ]


@pytest.mark.parametrize("workers", [2, 4, 8])
def test_ddp_gradient_bytes_per_step(workers):
    def worker(comm):
        protocol = DataParallel(comm, DDPConfig(), seed=0)
        model = protocol.setup(fixed(_model()), steps_per_epoch=100)
        images = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(comm.rank))
        F.cross_entropy(model(images), torch.tensor([0, 1])).backward()
        protocol.end_round(torch.optim.SGD(model.parameters(), lr=0.0))  # bills the step's all-reduces
        return comm.ledger

    for ledger in run_in_threads(workers, worker, timeout_s=600):
        sync = ledger.cumulative[Purpose.train_sync]
        assert sync.payload_bytes == P * 4
        assert sync.wire_bytes == 2 * (workers - 1) / workers * P * 4


P_SHARED = P - P_PARTITIONED  # 15,375,946 with 10 classes


def _resist_config(workers: int, min_depth: int = 0):
    from resist.config import Config

    cfg = Config()
    cfg.model.arch, cfg.num_workers = "preact_resnet101", workers
    cfg.protocol = ResISTConfig(decomposition=DecompositionConfig(min_depth=min_depth))
    return cfg


@pytest.mark.parametrize("workers", [2, 4, 8])
def test_resist_round_bytes(workers):
    """Shared layers: one all-reduce of P_shared; blocks: 4 bytes × parameters of each block whose
    holder changes, sent by its old holder straight to the new one; a block that stays moves nothing."""
    from resist.protocols.resist import ResIST

    def worker(comm):
        cfg = _resist_config(workers)
        protocol = ResIST(comm, cfg.protocol, layout=layout_of(cfg.model.arch), seed=cfg.seed)
        model = protocol.setup(
            lambda held_blocks=None, initialize=True, meta=False: build_model(
                SPEC, 10, held_blocks=held_blocks, device="meta" if meta else None
            ),
            steps_per_epoch=100,
        )
        before = protocol.current
        protocol.end_round(torch.optim.SGD(model.parameters(), lr=0.1))
        entries = [(e.op, e.purpose, e.payload_bytes, e.wire_bytes, e.peer) for e in comm.ledger.round_entries]
        return before, protocol.current, entries, count_parameters(model)

    results = run_in_threads(workers, worker, timeout_s=600)
    before, after = results[0][0], results[0][1]
    for rank, (_, _, entries, held) in enumerate(results):
        assert held == P_SHARED + len(before.blocks[rank]) * P_BLOCK
        sync = [e for e in entries if e[1] == Purpose.train_sync]
        assert sync == [
            (Op.all_reduce, Purpose.train_sync, P_SHARED * 4, 2 * (workers - 1) / workers * P_SHARED * 4, None)
        ]
        sent = {e[4]: e[2] for e in entries if e[1] == Purpose.handoff and e[0] == Op.send}
        received = {e[4]: e[2] for e in entries if e[1] == Purpose.handoff and e[0] == Op.recv}
        expected_sent, expected_received = {}, {}
        for b in SPEC.layout.partitioned_units(None):
            (old,), (new,) = before.holders(b), after.holders(b)
            if old == rank and new != rank:
                expected_sent[new] = expected_sent.get(new, 0) + P_BLOCK * 4
            if new == rank and old != rank:
                expected_received[old] = 0  # a payload counts once, on its sender
        assert sent == expected_sent and received == expected_received
        assert all(e[3] == e[2] for e in entries if e[0] == Op.send)  # wire = payload for a send
    moved = sum(before.holders(b) != after.holders(b) for b in SPEC.layout.partitioned_units(None))
    total = sum(e[2] for _, _, entries, _ in results for e in entries if e[1] == Purpose.handoff and e[0] == Op.send)
    assert total == 4 * P_BLOCK * moved and moved > 0


@pytest.mark.parametrize("workers", sorted(TABLE1_GB))
def test_paper_table1_convention_for_resist(workers):
    """Paper Table 1 (ResIST, CIFAR-100 PreActResNet-101): 2 × the bytes each worker's sub-ResNet
    holds, summed; 22 / 24 / 32 block slots for S = 2 / 4 / 8 at Table 1's depths. Exactly 0.454552 /
    0.720197 / 1.289267 GB, which the paper prints to three decimals by truncation."""
    from resist.decomposition import paper_assignment

    min_depth, gigabytes = TABLE1_MIN_DEPTH[workers], TABLE1_GB[workers].resist

    assignment = paper_assignment(range(1, 23), num_workers=workers, min_depth=min_depth, seed=0, round_index=0)
    assert assignment.num_slots == {2: 22, 4: 24, 8: 32}[workers]
    held = [
        count_parameters(build_model(SPEC, 100, held_blocks={2: [0, *blocks]}, device="meta")) * 4
        for blocks in assignment.blocks
    ]
    p_shared_100, slots = 41_396_900 - 22 * P_BLOCK, assignment.num_slots
    assert table1_bytes_per_round(held) == 2 * workers * p_shared_100 * 4 + 2 * slots * P_BLOCK * 4
    assert math.floor(table1_bytes_per_round(held) / 1e6) / 1e3 == gigabytes
