"""Protocol mathematics on in-process thread workers (float64, real gloo groups)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resist.comm import Purpose
from resist.comm.backends import run_in_threads
from resist.config import BatchNormMode, DDPConfig, LocalSGDConfig, OptimizerStatePolicy
from resist.models.preact import build_model
from resist.models.spec import ARCHITECTURES
from resist.protocols.ddp import DataParallel
from resist.protocols.local_sgd import LocalSGD
from tests.helpers import fixed


def _tiny_net() -> nn.Module:
    """Built in the test's thread: torch's global RNG is shared by all threads, so worker threads
    receive copies instead of initialising their own."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).double()


def _batch(rank: int, step: int, size: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 * step + rank)
    return torch.randn(size, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(3, (size,), generator=g)


def _sgd(params) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)


@pytest.mark.parametrize("workers", [2, 3])
def test_ddp_equals_single_process_sgd_on_the_combined_batch(workers):
    steps = 4
    initial = _tiny_net()

    def worker(comm):
        protocol = DataParallel(comm, DDPConfig(), seed=0)
        model = protocol.setup(fixed(copy.deepcopy(initial)), steps_per_epoch=100)
        optimizer = _sgd(model.parameters())
        for step in range(steps):
            images, labels = _batch(comm.rank, step)
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
            protocol.end_round(optimizer)  # every DDP step is a round
        return [p.detach().clone() for p in model.parameters()], comm.ledger

    results = run_in_threads(workers, worker)
    reference = _tiny_net()
    optimizer = _sgd(reference.parameters())
    for step in range(steps):
        batches = [_batch(rank, step) for rank in range(workers)]
        optimizer.zero_grad()
        F.cross_entropy(reference(torch.cat([b[0] for b in batches])), torch.cat([b[1] for b in batches])).backward()
        optimizer.step()
    for params, _ in results:
        for mine, theirs in zip(params, reference.parameters(), strict=True):
            torch.testing.assert_close(mine, theirs.detach(), rtol=1e-12, atol=1e-14)
    gradient_bytes = sum(p.numel() * 8 for p in reference.parameters())
    for _, ledger in results:
        assert ledger.cumulative[Purpose.train_sync].payload_bytes == steps * gradient_bytes
        assert ledger.cumulative[Purpose.train_sync].wire_bytes == steps * 2 * (workers - 1) / workers * gradient_bytes


def _running_stats_model() -> nn.Module:
    return build_model(
        ARCHITECTURES["preact_resnet_mini"], 3, in_channels=1, batchnorm=BatchNormMode.running_stats, init_seed=0
    ).double()


def _local_sgd_round(workers: int, paper_style: bool, policy: OptimizerStatePolicy, local_steps: int = 3):
    initial = _running_stats_model()

    def worker(comm):
        cfg = LocalSGDConfig(local_steps=local_steps, optimizer_state=policy, paper_style=paper_style)
        protocol = LocalSGD(comm, cfg, seed=0)
        model = protocol.setup(fixed(copy.deepcopy(initial)), steps_per_epoch=100)
        optimizer = _sgd(model.parameters())
        for step in range(local_steps):
            images, labels = _batch(comm.rank, step, size=6)
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()

        def momentum():
            return [optimizer.state[p]["momentum_buffer"].clone() for p in model.parameters() if p in optimizer.state]

        before, momentum_before = [t.detach().clone() for t in model.state_dict().values()], momentum()
        protocol.end_round(optimizer)
        after = [t.detach().clone() for t in model.state_dict().values()]
        return before, after, (momentum_before, momentum())

    return run_in_threads(workers, worker)


@pytest.mark.parametrize("workers", [2, 4])
@pytest.mark.parametrize("paper_style", [False, True])
def test_local_sgd_replicas_equal_the_mean_after_a_sync(workers, paper_style):
    results = _local_sgd_round(workers, paper_style, OptimizerStatePolicy.reset)
    keys = list(_running_stats_model().state_dict())
    for index, key in enumerate(keys):
        replicas = [after[index] for _, after, _ in results]
        for replica in replicas[1:]:
            assert torch.equal(replica, replicas[0]), key
        if replicas[0].is_floating_point():
            mean = torch.stack([before[index] for before, _, _ in results]).mean(dim=0)
            torch.testing.assert_close(replicas[0], mean, rtol=1e-14, atol=1e-15)
        pre_sync = [before[index] for before, _, _ in results]
        if "running_mean" in key:
            assert not all(torch.equal(p, pre_sync[0]) for p in pre_sync[1:])  # the replicas had diverged
    assert all(state_after == [] for _, _, (_, state_after) in results)  # reset: a new optimizer state


def test_local_sgd_keeps_the_optimizer_state_when_asked():
    """Each worker keeps its own momentum, untouched by the sync (the workers' buffers differ)."""
    results = _local_sgd_round(2, False, OptimizerStatePolicy.keep)
    for _, _, (before, after) in results:
        assert len(after) == len(list(_running_stats_model().parameters()))
        assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(results[0][2][1], results[1][2][1], strict=True))


def test_paper_style_and_all_reduce_give_the_same_model():
    plain = _local_sgd_round(2, False, OptimizerStatePolicy.reset)
    paper = _local_sgd_round(2, True, OptimizerStatePolicy.reset)
    for a, b in zip(plain[0][1], paper[0][1], strict=True):
        assert torch.equal(a, b)


def test_workers_agree_on_initial_weights_by_digest_and_broadcast_only_when_they_differ():
    """Weights every worker built from the seed are not sent: 32-byte digests are all-gathered
    ((S − 1) × 32 wire bytes per worker). A worker whose weights differ gets worker 0's."""
    from resist.comm.cost import Op
    from resist.protocols.base import DIGEST_BYTES, agree_on_initial_state

    def worker(comm):
        same = [torch.arange(6, dtype=torch.float32), torch.ones(2, 2)]
        agree_on_initial_state(same, comm)
        agreed = [(e.op, e.wire_bytes) for e in comm.ledger.round_entries]
        other = [torch.full((3,), float(comm.rank == 2))]
        agree_on_initial_state(other, comm)
        return agreed, [(e.op, e.wire_bytes) for e in comm.ledger.round_entries][len(agreed) :], other[0]

    workers = 3
    for rank, (agreed, differing, values) in enumerate(run_in_threads(workers, worker)):
        assert DIGEST_BYTES == 32 and agreed == [(Op.all_gather, (workers - 1) * 32.0)]
        assert differing == [(Op.all_gather, 64.0), (Op.broadcast, 12.0 if rank < workers - 1 else 0.0)]
        assert torch.equal(values, torch.zeros(3))
