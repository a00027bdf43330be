"""Local SGD and ResIST with ``protocol.compress`` on thread workers: after a round every worker
holds identical averages (and every next holder of a block identical block values), within the
codec's error of the float32 result, billed exactly as the codecs' byte counts."""

from __future__ import annotations

import pytest
import torch

from resist.comm import Purpose
from resist.comm.backends import run_in_threads
from resist.comm.codecs import BF16, Int8, compressed_all_reduce_wire_bytes
from resist.config import Compression, LocalSGDConfig
from resist.models.preact import build_model, count_parameters
from resist.models.spec import ARCHITECTURES
from resist.protocols.base import model_state_tensors
from resist.protocols.local_sgd import LocalSGD
from tests.sim.test_resist import ARCH, BLOCKS, STAGE, _config, _resist

CODECS = {Compression.bf16: BF16(), Compression.int8: Int8()}


def make_model(held_blocks=None, initialize=True):
    """The float32 network of tests/sim/test_resist.py (codecs encode float32)."""
    return build_model(
        ARCHITECTURES[ARCH], 3, in_channels=1, held_blocks=held_blocks, init_seed=0 if initialize else None
    )


def _train(model, optimizer, rank: int) -> None:
    for step in range(2):
        g = torch.Generator().manual_seed(10 * step + rank)
        images, labels = torch.randn(6, 1, 8, 8, generator=g), torch.randint(3, (6,), generator=g)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()


@pytest.mark.parametrize("compress", [Compression.bf16, Compression.int8])
@pytest.mark.parametrize("workers", [2, 3])
def test_compressed_local_sgd_agrees_on_every_worker_near_the_exact_mean(compress, workers):
    def worker(comm):
        protocol = LocalSGD(comm, LocalSGDConfig(local_steps=2, compress=compress), seed=5)
        model = protocol.setup(make_model, steps_per_epoch=10)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        _train(model, optimizer, comm.rank)
        before = [t.detach().clone() for t in protocol.shared]
        protocol.end_round(optimizer)
        return before, [t.detach().clone() for t in protocol.shared], comm.ledger.cumulative[Purpose.train_sync]

    results = run_in_threads(workers, worker)
    start = results[0][1]
    for _, after, _ in results:
        assert all(torch.equal(a, b) for a, b in zip(after, start, strict=True))  # identical everywhere
    exact = [torch.stack([r[0][k] for r in results]).mean(dim=0) for k in range(len(start))]
    largest_change = max((r[0][k] - a).abs().max().item() for r in results for k, a in enumerate(start))
    step = largest_change / 127 if compress == Compression.int8 else largest_change * 2**-8
    assert max((a - e).abs().max().item() for a, e in zip(start, exact, strict=True)) <= 3 * step + 1e-6
    numel = sum(t.numel() for t in start)
    billed = sum(r[2].wire_bytes for r in results)
    assert billed == workers * compressed_all_reduce_wire_bytes(CODECS[compress], numel, workers)


def test_compressed_resist_holders_agree_and_hand_offs_bill_encoded_blocks():
    """3 workers, minimum depth 3 of 8 blocks: blocks with several holders are averaged on their
    way; every next holder of a block ends with the same (decoded) values."""
    workers, codec = 3, Int8()

    def worker(comm):
        cfg = _config(workers, 3)
        cfg.protocol.compress = Compression.int8
        protocol = _resist(comm, cfg)
        model = protocol.setup(make_model, steps_per_epoch=100)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        _train(model, optimizer, comm.rank)
        protocol.end_round(optimizer)
        blocks = {
            b: [t.detach().clone() for t in model_state_tensors(model.block(STAGE, b))]
            for b in protocol.current.blocks[comm.rank]
        }
        shared = [t.detach().clone() for t in protocol._shared_tensors()]
        return protocol.current, blocks, shared, comm.ledger.round_entries

    results = run_in_threads(workers, worker)
    after = results[0][0]
    for b in BLOCKS:
        holders = after.holders(b)
        first = results[holders[0]][1][b]
        assert all(torch.equal(x, y) for h in holders for x, y in zip(results[h][1][b], first, strict=True))
    assert all(torch.equal(x, y) for r in results for x, y in zip(r[2], results[0][2], strict=True))
    block_numel = count_parameters(make_model().block(STAGE, 1))
    handoffs = [e for r in results for e in r[3] if e.purpose == Purpose.handoff and e.payload_bytes]
    assert handoffs and all(e.payload_bytes % codec.encoded_bytes(block_numel) == 0 for e in handoffs)
