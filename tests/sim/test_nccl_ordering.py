"""Under NCCL's point-to-point ordering (modelled by :mod:`resist.comm.nccl_model`, since nothing
here has several GPUs): the ungrouped send-before-receive pattern deadlocks, ``Comm.exchange``
does not, and every protocol's rounds, hand-offs and evaluations complete."""

from __future__ import annotations

import pytest
import torch

from resist.comm import Purpose
from resist.comm.backends import ThreadWorkerError, run_in_threads
from resist.config import (
    Config,
    DatasetName,
    DDPConfig,
    DecompositionConfig,
    EvalUnit,
    LocalSGDConfig,
    ProtocolName,
    ResISTConfig,
)
from resist.train.loop import train
from tests.helpers import ListSink

MB = 1 << 20


def _ungrouped_swap(comm):
    """The pattern ``Comm.exchange`` used before: every send issued, then every receive."""
    peer = 1 - comm.rank
    outgoing, incoming = torch.full((MB,), float(comm.rank)), torch.empty(MB)
    works = [comm.group.send([outgoing], peer, 0), comm.group.recv([incoming], peer, 0)]
    for work in works:
        work.wait()
    return incoming


def test_ungrouped_sends_before_receives_deadlock_under_nccl_ordering():
    with pytest.raises(ThreadWorkerError, match="did not complete within 2 s .*rank 0: send to 1"):
        run_in_threads(2, _ungrouped_swap, timeout_s=2, nccl_model=True)


def test_the_same_pattern_completes_on_gloo():
    """(gloo buffers sends, so the defect is invisible without the NCCL model.)"""
    results = run_in_threads(2, _ungrouped_swap, timeout_s=10)
    assert [r[0].item() for r in results] == [1.0, 0.0]


@pytest.mark.parametrize("workers", [2, 4])
def test_exchange_between_every_pair_completes_under_nccl_ordering(workers):
    def scenario(comm):
        peers = [p for p in range(workers) if p != comm.rank]
        outgoing = {p: [torch.full((MB,), 10.0 * comm.rank + p), torch.full((3,), float(p))] for p in peers}
        incoming = {p: [torch.empty(MB), torch.empty(3)] for p in peers}
        comm.exchange(list(outgoing.items()), list(incoming.items()), Purpose.handoff)
        return incoming, comm.ledger

    for rank, (incoming, ledger) in enumerate(run_in_threads(workers, scenario, timeout_s=10, nccl_model=True)):
        for peer, (big, small) in incoming.items():
            assert torch.equal(big, torch.full((MB,), 10.0 * peer + rank)) and torch.equal(
                small, torch.full((3,), 1.0 * rank)
            )
        assert ledger.cumulative[Purpose.handoff].payload_bytes == (workers - 1) * (MB + 3) * 4


def _config(protocol: ProtocolName, workers: int, min_depth: int = 0) -> Config:
    cfg = Config()
    cfg.dataset.name, cfg.dataset.image_size = DatasetName.digits, 8
    cfg.model.arch = "preact_resnet_mini_deep"
    cfg.num_workers = workers
    cfg.protocol = {
        ProtocolName.resist: ResISTConfig(local_steps=2, decomposition=DecompositionConfig(min_depth=min_depth)),
        ProtocolName.local_sgd: LocalSGDConfig(local_steps=2),
        ProtocolName.ddp: DDPConfig(),
    }[protocol]
    cfg.train.batch_size, cfg.train.max_steps, cfg.train.epochs = 16, 6, 1
    cfg.train.eval_every, cfg.train.eval_unit = 1, EvalUnit.rounds
    return cfg


@pytest.mark.parametrize(
    ("protocol", "workers", "min_depth", "compress"),
    [
        (ProtocolName.resist, 2, 0, "none"),
        (ProtocolName.resist, 3, 4, "none"),  # blocks with several holders: averaged on their way
        (ProtocolName.resist, 3, 4, "int8"),  # encoded shards and blocks
        (ProtocolName.local_sgd, 2, 0, "none"),
        (ProtocolName.local_sgd, 3, 0, "int8"),
        (ProtocolName.ddp, 2, 0, "none"),
        (ProtocolName.ddp, 2, 0, "powersgd"),  # three all-reduces per bucket
    ],
)
def test_every_protocol_completes_under_nccl_ordering(protocol, workers, min_depth, compress):
    cfg = _config(protocol, workers, min_depth)
    cfg.protocol.compress = type(cfg.protocol.compress)(compress)  # type: ignore[attr-defined]
    sink = ListSink()
    run_in_threads(workers, lambda comm: train(cfg, comm, sink), timeout_s=20, nccl_model=True)
    events = [r["event"] for r in sink.records]
    assert events.count("eval") == sink.records[0]["num_rounds"] and events[-1] == "summary"
    if protocol == ProtocolName.resist:
        assert sink.records[-1]["comm/cum_payload_bytes/handoff"] > 0
