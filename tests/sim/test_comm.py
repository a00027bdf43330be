"""Comm on in-process thread workers: every operation's result and its ledger entry."""

from __future__ import annotations

import time

import pytest
import torch

from resist.comm import Op, Purpose
from resist.comm.backends import ThreadWorkerError, run_in_threads


def _entries(comm):
    return [(e.op, e.purpose, e.payload_bytes, e.wire_bytes, e.group_size, e.peer) for e in comm.ledger.round_entries]


@pytest.mark.parametrize("size", [2, 3])
def test_collectives_and_their_ledger(size):
    def scenario(comm):
        r = comm.rank
        mixed = [torch.full((3,), float(r + 1), dtype=torch.float64), torch.full((2, 2), 2.0 * r)]
        comm.all_reduce(mixed, Purpose.train_sync)
        summed = [torch.tensor([float(r)])]
        comm.all_reduce(summed, Purpose.metrics, average=False)
        shared = [torch.full((4,), float(r))]
        comm.broadcast(shared, src=1, purpose=Purpose.init)
        reduced = [torch.full((2,), float(r + 1))]
        comm.reduce(reduced, dst=0, purpose=Purpose.train_sync)
        gathered = comm.all_gather(torch.tensor([r, 10 * r]), Purpose.metrics)
        inbox = torch.zeros(5)
        started = time.perf_counter()
        comm.exchange([((r + 1) % size, [torch.full((5,), float(r))])], [((r - 1) % size, [inbox])], Purpose.handoff)
        exchange_s = time.perf_counter() - started
        handoff = [e.seconds for e in comm.ledger.round_entries if e.purpose == Purpose.handoff]
        return mixed, summed, shared, reduced, gathered, inbox, _entries(comm), (handoff, exchange_s)

    results = run_in_threads(size, scenario)
    mean = sum(range(1, size + 1)) / size
    for rank, (mixed, summed, shared, reduced, gathered, inbox, entries, timing) in enumerate(results):
        (send_s, recv_s), exchange_s = timing  # an exchange's duration is billed once, to its first entry
        assert 0 < send_s <= exchange_s and recv_s == 0.0
        assert torch.equal(mixed[0], torch.full((3,), mean, dtype=torch.float64))
        assert torch.equal(mixed[1], torch.full((2, 2), 2.0 * sum(range(size)) / size))
        assert summed[0].item() == sum(range(size))
        assert torch.equal(shared[0], torch.full((4,), 1.0))
        expected_reduced = mean if rank == 0 else rank + 1.0  # non-roots keep their own values
        assert torch.equal(reduced[0], torch.full((2,), expected_reduced))
        assert [g.tolist() for g in gathered] == [[k, 10 * k] for k in range(size)]
        assert torch.equal(inbox, torch.full((5,), float((rank - 1) % size)))
        n = size
        assert entries == [
            (Op.all_reduce, Purpose.train_sync, 3 * 8 + 4 * 4, 2 * (n - 1) / n * 40, n, None),
            (Op.all_reduce, Purpose.metrics, 4, 2 * (n - 1) / n * 4, n, None),
            (Op.broadcast, Purpose.init, 16, 0.0 if rank == 0 else 16.0, n, 1),  # chain 1 → 2 → … → 0
            (Op.reduce, Purpose.train_sync, 8, 0.0 if rank == 0 else 8.0, n, 0),
            (Op.all_gather, Purpose.metrics, 16, (n - 1) * 16, n, None),
            (Op.send, Purpose.handoff, 20, 20.0, 2, (rank + 1) % n),
            (Op.recv, Purpose.handoff, 0, 0.0, 2, (rank - 1) % n),  # a payload counts once, on its sender
        ]


def test_ledger_rounds_and_state_dict():
    def scenario(comm):
        comm.ledger.start_round(0)
        comm.all_reduce([torch.ones(10)], Purpose.train_sync)
        comm.ledger.start_round(1)
        comm.all_reduce([torch.ones(10)], Purpose.train_sync)
        comm.broadcast([torch.ones(3)], src=0, purpose=Purpose.eval)
        return comm.ledger

    ledger = run_in_threads(2, scenario)[0]
    assert len(ledger.round_entries) == 2 and ledger.round == 1
    assert [entry.round for entry in ledger.round_entries] == [1, 1]
    assert ledger.total((Purpose.train_sync,)).payload_bytes == 80
    assert ledger.total().payload_bytes == 92 and ledger.total((Purpose.eval,)).wire_bytes == 12
    from resist.comm import Ledger

    restored = Ledger()
    restored.load_state_dict(ledger.state_dict())
    assert restored.state_dict() == ledger.state_dict()


def test_a_failing_thread_worker_is_named():
    def scenario(comm):
        if comm.rank == 1:
            raise RuntimeError("boom")
        return comm.rank

    with pytest.raises(ThreadWorkerError, match="thread worker 1 failed: RuntimeError: boom"):
        run_in_threads(2, scenario)


def test_a_tensor_off_the_ranks_device_is_refused_before_anything_moves():
    """NCCL needs every tensor on the rank's own GPU; Comm checks it on every backend."""
    from resist.comm import Comm

    def scenario(comm):
        on_gpu = Comm(comm.group, rank=comm.rank, size=comm.size, device=torch.device("cuda", comm.rank))
        with pytest.raises(ValueError, match=rf"Comm.collective: a tensor on cpu given to rank {comm.rank}, whose"):
            on_gpu.all_reduce([torch.ones(2)], Purpose.train_sync)
        with pytest.raises(ValueError, match="Comm.exchange: a tensor on cpu"):
            on_gpu.exchange([(1 - comm.rank, [torch.ones(2)])], [], Purpose.handoff)
        return on_gpu.ledger.total().operations

    assert run_in_threads(2, scenario) == [0, 0]


def test_an_exchange_that_mixes_dtypes_for_one_peer_is_refused():
    """One flat bucket per peer: a float64 tensor beside a float32 one would travel cast to float32."""

    def scenario(comm):
        peer = 1 - comm.rank
        with pytest.raises(ValueError, match=r"peer \d mix dtypes \(torch.float32, torch.float64\)"):
            comm.exchange(
                [(peer, [torch.zeros(2), torch.zeros(2, dtype=torch.float64)])],
                [(peer, [torch.zeros(4)])],
                Purpose.handoff,
            )
        return comm.ledger.total().payload_bytes

    assert run_in_threads(2, scenario) == [0, 0]
