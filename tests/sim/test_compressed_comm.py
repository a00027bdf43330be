"""Compressed all-reduce on thread workers: every rank ends with identical values, close to the true
mean within the codec's bound, and the ledger bills exactly the encoded bytes the cost model gives;
compressed point-to-point exchange delivers each item as its encoding decodes, billed as encoded."""

from __future__ import annotations

import pytest
import torch

from resist.comm import Op, Purpose, exchange_compressed
from resist.comm.backends import run_in_threads
from resist.comm.codecs import BF16, Int4, Int8, compressed_all_reduce_wire_bytes, shard_bounds


def test_shards_are_chunk_aligned_and_cover_everything():
    assert shard_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert shard_bounds(1000, 4, align=256) == [(0, 256), (256, 512), (512, 768), (768, 1000)]
    assert shard_bounds(300, 4, align=256) == [(0, 256), (256, 300), (300, 300), (300, 300)]


@pytest.mark.parametrize("workers", [2, 3, 4])
@pytest.mark.parametrize("codec", [BF16(), Int8(chunk=64), Int8(chunk=64, stochastic=False), Int4(chunk=64)], ids=str)
def test_compressed_all_reduce_agrees_on_every_rank_and_bills_the_encoded_bytes(workers, codec):
    shapes = [(37, 5), (300,), (2, 2)]  # 489 values: shards of several chunks and a short one

    def values(rank: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(rank)
        return [torch.randn(shape, generator=g) * (rank + 1) for shape in shapes]

    def worker(comm):
        tensors = values(comm.rank)
        generator = torch.Generator().manual_seed(1000 + comm.rank)
        comm.all_reduce_compressed(tensors, Purpose.train_sync, codec=codec, generator=generator)
        entries = comm.ledger.round_entries
        return tensors, sum(e.wire_bytes for e in entries), {e.op for e in entries}

    results = run_in_threads(workers, worker)
    exact = [torch.stack([values(r)[k] for r in range(workers)]).mean(dim=0) for k in range(len(shapes))]
    for tensors, _, ops in results:
        assert ops == {Op.send, Op.recv}
        for got, first in zip(tensors, results[0][0], strict=True):
            assert torch.equal(got, first)  # identical on every rank
    flat_exact = torch.cat([t.reshape(-1) for t in exact])
    flat_got = torch.cat([t.reshape(-1) for t in results[0][0]])
    # each contribution and the mean are rounded once: a few steps of the largest chunk's scale at most
    largest = max(v.abs().max().item() for r in range(workers) for v in values(r))
    bound = 3 * largest / codec.levels if isinstance(codec, Int8 | Int4) else 3 * largest * 2**-8
    assert (flat_got - flat_exact).abs().max().item() <= bound
    billed = sum(total for _, total, _ in results)
    assert billed == workers * compressed_all_reduce_wire_bytes(codec, 489, workers)


def test_bf16_sends_exactly_half_of_a_float32_ring_all_reduce():
    for workers in (2, 4, 8):
        for numel in (41_396_900, 1001):
            fp32_ring = 2 * (workers - 1) / workers * 4 * numel
            assert compressed_all_reduce_wire_bytes(BF16(), numel, workers) == fp32_ring / 2


@pytest.mark.parametrize("codec", [BF16(), Int8(chunk=8, stochastic=False), Int8(chunk=8)], ids=str)
def test_compressed_exchange_delivers_each_item_as_decoded_and_bills_the_encodings(codec):
    workers, keys, shapes = 3, (4, 7), [(3, 4), (5,)]  # 17 values: two int8 chunks and a short one

    def item(sender: int, receiver: int, key: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(100 * sender + 10 * receiver + key)
        return [torch.randn(shape, generator=g) for shape in shapes]

    def worker(comm):
        peers = [p for p in range(workers) if p != comm.rank]
        received = exchange_compressed(
            comm,
            codec,
            sends={(peer, key): item(comm.rank, peer, key) for peer in peers for key in keys},
            receives=[(peer, key) for peer in peers for key in keys],
            like=lambda key: [torch.empty(shape) for shape in shapes],
            generator=torch.Generator().manual_seed(comm.rank),
            purpose=Purpose.handoff,
        )
        return received, comm.ledger.round_entries

    for rank, (received, entries) in enumerate(run_in_threads(workers, worker)):
        assert sorted(received) == [(peer, key) for peer in range(workers) if peer != rank for key in keys]
        for (peer, key), tensors in received.items():
            sent = torch.cat([t.reshape(-1) for t in item(peer, rank, key)])
            assert [tuple(t.shape) for t in tensors] == shapes
            got = torch.cat([t.reshape(-1) for t in tensors])
            if isinstance(codec, Int8) and codec.stochastic:  # below one step of the chunk's scale
                assert ((got - sent).abs() <= codec.scales(sent).repeat_interleave(codec.chunk)[:17]).all()
            else:  # exactly what the encoding decodes to
                assert torch.equal(got, codec.decode(codec.encode(sent), 17))
        sends = [e for e in entries if e.op == Op.send]
        assert {e.purpose for e in entries} == {Purpose.handoff}
        assert [e.payload_bytes for e in sends] == [len(keys) * codec.encoded_bytes(17)] * (workers - 1)


@pytest.mark.parametrize("workers", [2, 3])
def test_error_feedback_loses_nothing_an_encoding_drops(workers):
    """With a residual, shard by shard: S × the result + the sum of the new residuals = the sum of
    the values and the old residuals (to float rounding), so what int4 drops is sent later; and
    the residuals are what they claim (zero where nothing was encoded)."""
    codec, shapes = Int4(chunk=8), [(5, 7), (12,)]  # 47 values: shards of several chunks
    numel = 47

    def values(rank: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(rank)
        return [torch.randn(shape, generator=g) for shape in shapes]

    def old_residual(rank: int) -> torch.Tensor:
        return torch.randn(numel, generator=torch.Generator().manual_seed(50 + rank)) * 0.1

    def worker(comm):
        tensors, residual = values(comm.rank), old_residual(comm.rank)
        comm.all_reduce_compressed(
            tensors,
            Purpose.train_sync,
            codec=codec,
            generator=torch.Generator().manual_seed(comm.rank),
            residual=residual,
        )
        return torch.cat([t.reshape(-1) for t in tensors]), residual

    results = run_in_threads(workers, worker)
    result = results[0][0]
    sent = sum(torch.cat([t.reshape(-1) for t in values(r)]) + old_residual(r) for r in range(workers))
    kept = sum(residual for _, residual in results)
    assert torch.allclose(workers * result + kept, sent, atol=1e-5)
    exact = sent / workers
    assert (result - exact).abs().max() > 1e-3  # int4 did drop something, which the residuals hold
