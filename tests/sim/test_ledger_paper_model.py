"""Ledger == cost model, exactly, for the paper's PreActResNet-101 (P = 41,350,730) at S = 2, 4, 8.

Each check runs one synchronisation (no training): local SGD's parameter all-reduce, the paper
code's reduce+broadcast variant, and one DDP backward pass.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resist.comm import Op, Purpose
from resist.comm.groups import run_in_threads
from resist.config import ProtocolConfig, ProtocolName
from resist.models.preact import build_model, count_parameters
from resist.models.spec import ARCHITECTURES
from resist.protocols.ddp import DataParallel
from resist.protocols.local_sgd import LocalSGD

P = 41_350_730
P_BLOCK = 1_180_672
P_PARTITIONED = 22 * P_BLOCK
SPEC = ARCHITECTURES["preact_resnet101"]


def _model():
    model = build_model(SPEC, 10)
    assert count_parameters(model) == P
    return model


@pytest.mark.parametrize("workers", [2, 4, 8])
def test_local_sgd_sync_bytes(workers):
    def worker(comm):
        protocol = LocalSGD(comm, ProtocolConfig(name=ProtocolName.local_sgd))
        model = protocol.setup(_model())
        protocol.end_round(torch.optim.SGD(model.parameters(), lr=0.1))
        return comm.ledger

    for rank, ledger in enumerate(run_in_threads(workers, worker, timeout_s=600)):
        sync, init = ledger.cumulative[Purpose.train_sync], ledger.cumulative[Purpose.init]
        assert (sync.payload_bytes, sync.operations) == (P * 4, 1)
        assert sync.wire_bytes == 2 * (workers - 1) / workers * P * 4
        assert init.payload_bytes == P * 4
        assert init.wire_bytes == ((workers - 1) * P * 4 if rank == 0 else 0)


@pytest.mark.parametrize("workers", [2, 4])
def test_paper_style_local_sgd_sync_bytes(workers):
    def worker(comm):
        protocol = LocalSGD(comm, ProtocolConfig(name=ProtocolName.local_sgd, paper_style=True))
        model = protocol.setup(_model())
        protocol.end_round(torch.optim.SGD(model.parameters(), lr=0.1))
        return [
            (e.op, e.payload_bytes, e.wire_bytes) for e in comm.ledger.round_entries if e.purpose == Purpose.train_sync
        ]

    shared, part = (P - P_PARTITIONED) * 4, P_PARTITIONED * 4
    for rank, entries in enumerate(run_in_threads(workers, worker, timeout_s=600)):
        assert entries == [
            (Op.all_reduce, shared, 2 * (workers - 1) / workers * shared),
            (Op.reduce, part, 0.0 if rank == 0 else float(part)),
            (Op.broadcast, part, float((workers - 1) * part) if rank == 0 else 0.0),
        ]


@pytest.mark.parametrize("workers", [2, 4, 8])
def test_ddp_gradient_bytes_per_step(workers):
    def worker(comm):
        model = DataParallel(comm).setup(_model())
        images = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(comm.rank))
        F.cross_entropy(model(images), torch.tensor([0, 1])).backward()
        return comm.ledger

    for ledger in run_in_threads(workers, worker, timeout_s=600):
        sync = ledger.cumulative[Purpose.train_sync]
        assert sync.payload_bytes == P * 4
        assert sync.wire_bytes == 2 * (workers - 1) / workers * P * 4
