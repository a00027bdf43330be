"""Local SGD and ResIST with ``protocol.compress`` on thread workers: after a round every worker
holds identical averages (and every next holder of a block identical block values), within the
codec's error of the float32 result, billed exactly as the codecs' byte counts."""

from __future__ import annotations

import pytest
import torch

from resist.comm import Purpose
from resist.comm.backends import run_in_threads
from resist.comm.codecs import BF16, Int4, Int8, compressed_all_reduce_wire_bytes
from resist.config import Compression, LocalSGDConfig
from resist.decomposition.transfers import hand_off_plan
from resist.protocols.base import model_state_tensors
from resist.protocols.local_sgd import LocalSGD
from tests.helpers import RESIST_BLOCKS, unit_block
from tests.helpers import RESIST_BLOCKS as BLOCKS
from tests.helpers import RESIST_STAGE as STAGE
from tests.helpers import float32_network as make_model
from tests.helpers import resist_config as _config
from tests.helpers import resist_protocol as _resist
from tests.helpers import train_two_steps as _train

CODECS = {Compression.bf16: BF16(), Compression.int8: Int8(), Compression.int4: Int4()}
LEVELS = {Compression.int8: 127, Compression.int4: 7}


def _step(compress: Compression, largest_change: float) -> float:
    """One quantisation step of a chunk whose largest magnitude is ``largest_change``."""
    return largest_change / LEVELS[compress] if compress in LEVELS else largest_change * 2**-8


@pytest.mark.parametrize("compress", [Compression.bf16, Compression.int8, Compression.int4])
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
    step = _step(compress, largest_change)
    assert max((a - e).abs().max().item() for a, e in zip(start, exact, strict=True)) <= 3 * step + 1e-6
    numel = sum(t.numel() for t in start)
    billed = sum(r[2].wire_bytes for r in results)
    assert billed == workers * compressed_all_reduce_wire_bytes(CODECS[compress], numel, workers)


@pytest.mark.parametrize("compress", [Compression.bf16, Compression.int8, Compression.int4])
def test_compressed_resist_averages_co_held_blocks_by_encoded_changes_and_delivers_float32(compress):
    """3 workers, minimum depth 3 of 8 blocks: a block with several holders is averaged at its
    aggregator from the others' encoded changes since the round start (near the exact mean), then
    delivered in float32; every next holder of a block ends with the same values. Each gather send
    bills the encoded bytes of the block's values, each delivery their float32 bytes."""
    workers, codec = 3, CODECS[compress]

    def worker(comm):
        cfg = _config(workers, 3)
        cfg.protocol.compress = compress
        protocol = _resist(comm, cfg)
        model = protocol.setup(make_model, steps_per_epoch=100)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        before_round = protocol.current
        _train(model, optimizer, comm.rank)
        trained = {
            b: torch.cat([t.detach().reshape(-1) for t in model_state_tensors(unit_block(model, b))])
            for b in before_round.blocks[comm.rank]
        }
        protocol.end_round(optimizer)
        blocks = {
            b: torch.cat([t.detach().reshape(-1) for t in model_state_tensors(unit_block(model, b))])
            for b in protocol.current.blocks[comm.rank]
        }
        shared = [t.detach().clone() for t in protocol._shared_tensors(protocol.model)]
        return before_round, protocol.current, trained, blocks, shared, comm.ledger.round_entries

    results = run_in_threads(workers, worker)
    current, following = results[0][0], results[0][1]
    plan = hand_off_plan(current, following, BLOCKS)
    assert plan.gather and plan.deliver  # both phases are exercised
    for b in BLOCKS:
        holders = following.holders(b)
        first = results[holders[0]][3][b]
        assert all(torch.equal(results[h][3][b], first) for h in holders)
        copies = [results[h][2][b] for h in current.holders(b)]
        exact = torch.stack(copies).mean(dim=0)
        if len(copies) == 1:
            assert torch.equal(first, exact)  # a block with one holder moves in float32: exact
        else:
            start = torch.cat([t.reshape(-1) for t in model_state_tensors(unit_block(make_model(), b))])
            largest_change = max((c - start).abs().max().item() for c in copies)
            assert (first - exact).abs().max().item() <= _step(compress, largest_change) + 1e-6
    assert all(torch.equal(x, y) for r in results for x, y in zip(r[4], results[0][4], strict=True))
    numel = sum(t.numel() for t in model_state_tensors(make_model().block(STAGE, 1)))
    for rank, result in enumerate(results):
        sent = sum(e.payload_bytes for e in result[5] if e.purpose == Purpose.handoff)
        gathered = sum(len(blocks) for (sender, _), blocks in plan.gather.items() if sender == rank)
        delivered = sum(len(blocks) for (sender, _), blocks in plan.deliver.items() if sender == rank)
        assert sent == gathered * codec.encoded_bytes(numel) + delivered * 4 * numel


def test_a_checkpoint_with_blocks_numbered_within_their_stage_resumes_in_unit_numbers():
    """Checkpoints written before blocks had unit numbers name them by their index in the stage (no
    ``units`` key): the assignment and the co-held blocks' anchors are read as the same blocks."""
    workers, offset = 3, RESIST_BLOCKS[0] - 1  # stage 2's block 1 is unit 3

    def worker(comm):
        cfg = _config(workers, 3)  # 9 slots for 8 blocks: co-held blocks have anchors
        cfg.protocol.compress = Compression.int8
        protocol = _resist(comm, cfg)
        protocol.setup(make_model, steps_per_epoch=100)
        protocol.end_round(torch.optim.SGD(protocol.model.parameters(), lr=0.1))
        state = protocol.state_dict()
        old = {k: v for k, v in state.items() if k != "units"}
        old["assignment"] = [[b - offset for b in held] for held in state["assignment"]]
        old["block_anchors"] = {b - offset: values for b, values in state["block_anchors"].items()}
        resumed = _resist(comm, cfg)
        resumed.setup(make_model, steps_per_epoch=100, state=old)
        return protocol.current, resumed.current, state["block_anchors"], resumed.anchors

    results = run_in_threads(workers, worker)
    assert any(anchors for _, _, anchors, _ in results)  # co-held blocks exist
    for now, read, anchors, read_anchors in results:
        assert read == now and read_anchors.keys() == anchors.keys()
        assert all(torch.equal(a, b) for k in anchors for a, b in zip(anchors[k], read_anchors[k], strict=True))
