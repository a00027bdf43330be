"""The outer optimizer on thread workers: its update is torch's Nesterov SGD on the pseudo-gradient
bit for bit; DiLoCo and ResIST with outer lr 1 and momentum 0 are local SGD and plain ResIST; with
DiLoCo's 0.7 / 0.9 each round's outcome is the formula's, the same on every worker (a block's at
its aggregator, its outer momentum delivered with it to its next holders), billed as local SGD's
bytes (DiLoCo) or plain ResIST's plus one float32 copy of each delivered block's parameters."""

from __future__ import annotations

import pytest
import torch

from resist.comm import Purpose
from resist.comm.backends import run_in_threads
from resist.config import Compression, DiLoCoConfig, LocalSGDConfig, OptimizerStatePolicy, OuterOptimizerName
from resist.decomposition.transfers import hand_off_plan
from resist.protocols.base import model_state_tensors
from resist.protocols.diloco import DiLoCo
from resist.protocols.expected_bytes import ModelShapes, resist_handoffs
from resist.protocols.local_sgd import LocalSGD
from resist.protocols.outer import OuterNesterov
from tests.helpers import RESIST_BLOCKS as BLOCKS
from tests.helpers import float32_network as make_model
from tests.helpers import resist_config as _config
from tests.helpers import resist_protocol as _resist
from tests.helpers import train_two_steps as _train
from tests.helpers import unit_block


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def test_the_outer_step_is_torch_nesterov_sgd_on_the_pseudo_gradient_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=g), torch.randn(4, generator=g)]
    reference = [torch.nn.Parameter(t.clone()) for t in start]
    sgd = torch.optim.SGD(reference, lr=0.7, momentum=0.9, nesterov=True)
    outer, momenta = OuterNesterov(0.7, 0.9), [torch.zeros_like(t) for t in start]
    for _ in range(3):
        changes = [torch.randn(t.shape, generator=g) for t in start]
        for p, change in zip(reference, changes, strict=True):
            p.grad = -change
        sgd.step()
        outer.step(start, changes, momenta)
        assert all(torch.equal(a, b.detach()) for a, b in zip(start, reference, strict=True))
        assert all(torch.equal(m, sgd.state[p]["momentum_buffer"]) for m, p in zip(momenta, reference, strict=True))


def _local_round(protocol, comm, rounds: int = 2):
    model = protocol.setup(make_model, steps_per_epoch=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trained = []
    for _ in range(rounds):
        _train(model, optimizer, comm.rank)
        trained.append(_flat(model_state_tensors(model)))
        protocol.end_round(optimizer)
    return trained, _flat(model_state_tensors(model)), comm.ledger.cumulative[Purpose.train_sync].wire_bytes, protocol


def test_diloco_with_outer_lr_1_and_no_momentum_is_local_sgd_and_sends_its_bytes():
    def worker(comm):
        diloco = DiLoCo(
            comm,
            DiLoCoConfig(local_steps=2, outer_lr=1.0, outer_momentum=0.0, optimizer_state=OptimizerStatePolicy.reset),
            seed=0,
        )
        return _local_round(diloco, comm)

    def local(comm):
        return _local_round(LocalSGD(comm, LocalSGDConfig(local_steps=2), seed=0), comm)

    diloco, local_sgd = run_in_threads(3, worker), run_in_threads(3, local)
    for (_, ours, our_bytes, _), (_, theirs, their_bytes, _) in zip(diloco, local_sgd, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-6)  # start + mean change against the mean: rounding only
        assert our_bytes == their_bytes


@pytest.mark.parametrize("compress", [Compression.int8, Compression.int4])
def test_compressed_diloco_with_outer_lr_1_and_no_momentum_is_compressed_local_sgd_bit_for_bit(compress):
    """The same encoded changes (the same seeded draws, the same residuals) and start + change."""

    def worker(comm):
        cfg = DiLoCoConfig(local_steps=2, outer_lr=1.0, outer_momentum=0.0, compress=compress)
        cfg.optimizer_state = OptimizerStatePolicy.reset
        return _local_round(DiLoCo(comm, cfg, seed=0), comm)

    def local(comm):
        return _local_round(LocalSGD(comm, LocalSGDConfig(local_steps=2, compress=compress), seed=0), comm)

    for ours, theirs in zip(run_in_threads(2, worker), run_in_threads(2, local), strict=True):
        assert torch.equal(ours[1], theirs[1]) and ours[2] == theirs[2]


def test_diloco_applies_nesterov_to_the_mean_change_on_every_worker_and_reports_its_memory():
    def worker(comm):
        diloco = DiLoCo(comm, DiLoCoConfig(local_steps=2), seed=0)
        return _local_round(diloco, comm)

    results = run_in_threads(2, worker)
    start = _flat(model_state_tensors(make_model()))
    momentum = torch.zeros_like(start)
    for r in range(2):
        change = torch.stack([trained[r] for trained, *_ in results]).mean(dim=0) - start
        momentum = 0.9 * momentum - change
        start = start - 0.7 * (-change + 0.9 * momentum)
    for _, final, _, protocol in results:
        assert torch.allclose(final, start, atol=1e-5)
        assert torch.equal(final, results[0][1])  # identical on every worker
        params = sum(p.numel() for p in protocol.model.parameters())
        assert protocol.held_state_bytes() == 4 * (start.numel() + params)  # round start + outer momenta


def _resist_rounds(workers: int, min_depth: int, outer: tuple[float, float] | None, rounds: int = 2):
    def worker(comm):
        cfg = _config(workers, min_depth)
        if outer is not None:
            cfg.protocol.outer_optimizer = OuterOptimizerName.nesterov
            cfg.protocol.outer_lr, cfg.protocol.outer_momentum = outer
        protocol = _resist(comm, cfg)
        model = protocol.setup(make_model, steps_per_epoch=100)
        history = []
        for _ in range(rounds):
            optimizer = torch.optim.SGD(protocol.model.parameters(), lr=0.1)
            current = protocol.current
            _train(protocol.model, optimizer, comm.rank)
            trained = {b: _flat(model_state_tensors(unit_block(protocol.model, b))) for b in current.blocks[comm.rank]}
            protocol.end_round(optimizer)
            held = {
                b: _flat(model_state_tensors(unit_block(protocol.model, b))) for b in protocol.current.blocks[comm.rank]
            }
            momenta = {b: _flat(m) for b, m in protocol.outer_momenta.items()}
            history.append((current, protocol.current, trained, held, momenta, comm.ledger.round_entries))
            comm.ledger.start_round(len(history))
        shared = _flat(protocol._shared_tensors(protocol.model))
        return history, shared, model

    return run_in_threads(workers, worker)


def test_resist_with_outer_lr_1_and_no_momentum_is_resist_and_bills_the_momenta():
    plain, outer = _resist_rounds(3, 3, None), _resist_rounds(3, 3, (1.0, 0.0))
    block_params = sum(p.numel() for p in unit_block(make_model(), BLOCKS[0]).parameters())
    for rank, ((ours, shared, _), (theirs, their_shared, _)) in enumerate(zip(outer, plain, strict=True)):
        assert torch.allclose(shared, their_shared, atol=1e-6)
        for (current, following, _, held, _, entries), (_, _, _, their_held, _, their_entries) in zip(
            ours, theirs, strict=True
        ):
            assert held.keys() == their_held.keys()
            assert all(torch.allclose(held[b], their_held[b], atol=1e-6) for b in held)
            plan = hand_off_plan(current, following, BLOCKS)
            delivered = sum(len(blocks) for (sender, _), blocks in plan.deliver.items() if sender == rank)
            handoff = sum(e.payload_bytes for e in entries if e.purpose == Purpose.handoff)
            their_handoff = sum(e.payload_bytes for e in their_entries if e.purpose == Purpose.handoff)
            assert handoff == their_handoff + delivered * 4 * block_params


def test_resist_steps_each_block_from_its_round_start_at_its_aggregator_and_delivers_its_momentum():
    """3 workers, minimum depth 3: round 1's outcome for every block is start − 0.7·(g + 0.9·m) with
    g = start − the mean of its holders' trained values and m = g; every next holder holds that value
    and momentum m."""
    results = _resist_rounds(3, 3, (0.7, 0.9), rounds=1)
    start_model = make_model()
    current = results[0][0][0][0]
    co_held = [b for b in BLOCKS if len(current.holders(b)) > 1]
    assert co_held  # the aggregators' path is exercised
    for b in BLOCKS:
        start = _flat(model_state_tensors(unit_block(start_model, b)))
        mean = torch.stack([results[h][0][0][2][b] for h in current.holders(b)]).mean(dim=0)
        params = sum(p.numel() for p in unit_block(start_model, b).parameters())
        gradient = (start - mean)[:params]
        expected = torch.cat([start[:params] - 0.7 * (gradient + 0.9 * gradient), mean[params:]])
        holders = [rank for rank, (history, _, _) in enumerate(results) if b in history[0][3]]
        assert holders
        for rank in holders:
            _, _, _, held, momenta, _ = results[rank][0][0]
            assert torch.allclose(held[b], expected, atol=1e-6)
            assert torch.allclose(momenta[b], gradient, atol=1e-6)


def test_the_cost_model_bills_resist_with_the_outer_optimizer_as_the_ledger_does():
    """The dry run's and the benchmark's hand-off bytes (resist_handoffs) equal what the workers'
    ledgers bill, round by round, with the outer momenta on every delivery."""
    results = _resist_rounds(3, 3, (0.7, 0.9), rounds=2)
    cfg = _config(3, 3)
    cfg.protocol.outer_optimizer = OuterOptimizerName.nesterov
    handoff = resist_handoffs(cfg, ModelShapes(cfg))
    for r in range(2):
        billed = sum(e.wire_bytes for history, _, _ in results for e in history[r][5] if e.purpose == Purpose.handoff)
        assert billed == 3 * handoff(r)
