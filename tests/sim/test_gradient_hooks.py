"""DDP with ``protocol.compress`` (torch's bf16 and PowerSGD hooks) on thread workers: every worker
ends each step with the same weights, the ledger bills exactly the bytes the hooks all-reduce
(bf16: half of float32's; PowerSGD: float32 until its start step, then the uncompressed tensors and
the P and Q factors of :func:`powersgd_sizes`), torch's global generator is left alone, and
PowerSGD's state round-trips: a hook restored from :meth:`state_dict` continues exactly as the
original."""

from __future__ import annotations

import pytest
import torch

from resist.comm import Op, Purpose
from resist.comm.backends import run_in_threads
from resist.comm.cost import powersgd_sizes
from resist.config import DDPConfig, GradientCompression
from resist.models.preact import build_model
from resist.models.spec import ARCHITECTURES
from resist.protocols.ddp import DataParallel

ARCH, STEPS, START = "preact_resnet_mini_deep", 4, 2


def make_model(held_blocks=None, initialize=True):
    return build_model(ARCHITECTURES[ARCH], 3, in_channels=1, init_seed=0 if initialize else None)


def _batch(step: int, rank: int):
    g = torch.Generator().manual_seed(100 * step + rank)
    return torch.randn(6, 1, 8, 8, generator=g), torch.randint(3, (6,), generator=g)


def _steps(protocol, model, rank: int, steps: range) -> list[tuple[list, int]]:
    """Train ``steps`` on ``rank``'s batches; per step, the ledger's entries of that step and, with
    PowerSGD, the values torch's hook counted as sent in it (its ``total_numel_after_compression``)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    state = getattr(protocol.hook, "state", None)
    per_step = []
    for step in steps:
        images, labels = _batch(step, rank)
        optimizer.zero_grad()
        protocol.comm.ledger.start_round(step)
        counted = state.total_numel_after_compression if state is not None else 0
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
        protocol.end_round(optimizer)  # every DDP step is a round: its all-reduces are billed here
        entries = [e for e in protocol.comm.ledger.round_entries if e.purpose == Purpose.train_sync]
        per_step.append((entries, state.total_numel_after_compression - counted if state is not None else 0))
    return per_step


def _run(compress: GradientCompression, workers: int = 2, start: int = START):
    def worker(comm):
        generator_before = torch.get_rng_state()
        cfg = DDPConfig(compress=compress, powersgd_start_step=start)
        protocol = DataParallel(comm, cfg, seed=7)
        model = protocol.setup(make_model, steps_per_epoch=10)
        per_step = _steps(protocol, model, comm.rank, range(STEPS))
        weights = [p.detach().clone() for p in protocol.model.parameters()]
        return weights, per_step, torch.equal(generator_before, torch.get_rng_state())

    return run_in_threads(workers, worker)


@pytest.mark.parametrize("compress", list(GradientCompression))
def test_every_worker_holds_the_same_weights_and_the_global_generator_is_untouched(compress):
    results = _run(compress, workers=3)
    for weights, _, generator_untouched in results:
        assert generator_untouched
        assert all(torch.equal(a, b) for a, b in zip(weights, results[0][0], strict=True))
    float32 = _run(GradientCompression.none, workers=3)[0][0]
    changed = max((a - b).abs().max().item() for a, b in zip(results[0][0], float32, strict=True))
    assert (changed == 0) == (compress == GradientCompression.none)  # a compressed step is not float32's


def test_bf16_bills_half_of_float32_gradients():
    numel = sum(p.numel() for p in make_model().parameters())
    for compress, value_bytes in ((GradientCompression.none, 4), (GradientCompression.bf16, 2)):
        for _, per_step, _ in _run(compress):
            for entries, _ in per_step:
                assert all(e.op == Op.all_reduce for e in entries)
                assert sum(e.payload_bytes for e in entries) == value_bytes * numel
                assert sum(e.wire_bytes for e in entries) == pytest.approx(value_bytes * numel, rel=1e-12)  # 2(S-1)/S


def test_powersgd_bills_float32_until_its_start_step_then_what_torch_sends():
    """Before the start step the float32 gradients; from it on the values torch's hook counts as
    sent (its own tally, made before it sends), which are the sizes the cost model gives, far fewer
    than the gradients'; at every step DDP's used-parameter map, an int32 per parameter tensor."""
    params = list(make_model().parameters())
    numel, used_map = sum(p.numel() for p in params), 4 * len(params)
    sizes = powersgd_sizes([p.shape for p in params], rank=2)
    assert sizes.p > 0 and sizes.q > 0 and sizes.total < numel / 10
    for _, per_step, _ in _run(GradientCompression.powersgd):
        for step, (entries, counted) in enumerate(per_step):
            payload = sum(e.payload_bytes for e in entries)
            assert all(e.op == Op.all_reduce for e in entries)
            if step < START:
                assert (payload, counted) == (4 * numel + used_map, 0)
            else:
                assert counted == sizes.total
                assert payload == 4 * counted + used_map


def test_a_ledger_that_would_bill_other_sizes_than_torch_sends_stops_the_run(monkeypatch):
    from resist.comm import gradient_hooks
    from resist.comm.backends import ThreadWorkerError
    from resist.comm.cost import PowerSGDSizes

    def one_value_short(shapes, rank, min_compression_rate=2):
        sizes = powersgd_sizes(shapes, rank, min_compression_rate)
        return PowerSGDSizes(sizes.uncompressed - 1, sizes.p, sizes.q)

    monkeypatch.setattr(gradient_hooks, "powersgd_sizes", one_value_short)
    with pytest.raises(ThreadWorkerError, match="powersgd_sizes no longer matches this torch"):
        _run(GradientCompression.powersgd)


def test_a_restored_powersgd_hook_continues_exactly_as_the_original():
    """Two steps, state_dict, then (a) two more steps, (b) a new protocol from the state and the
    same two steps: bitwise the same weights and the same bills."""

    def worker(comm):
        cfg = DDPConfig(compress=GradientCompression.powersgd, powersgd_start_step=START)
        protocol = DataParallel(comm, cfg, seed=7)
        model = protocol.setup(make_model, steps_per_epoch=10)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(3):
            images, labels = _batch(step, comm.rank)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(images), labels).backward()
            optimizer.step()
            protocol.end_round(optimizer)
        state = protocol.state_dict()
        weights = {k: v.clone() for k, v in protocol.model.state_dict().items()}
        assert state["gradient_hook"]["iter"] == 3 and state["gradient_hook"]["error"]
        original = _steps(protocol, model, comm.rank, range(3, 5))
        restored = DataParallel(comm, cfg, seed=7)
        twin = restored.setup(make_model, steps_per_epoch=10, state=state)
        restored.model.load_state_dict(weights)
        again = _steps(restored, twin, comm.rank, range(3, 5))
        pairs = zip(protocol.model.parameters(), restored.model.parameters(), strict=True)
        same = all(torch.equal(a, b) for a, b in pairs)
        bills = [[e.payload_bytes for e in s] for s, _ in original] == [[e.payload_bytes for e in s] for s, _ in again]
        return same, bills

    assert run_in_threads(2, worker) == [(True, True)] * 2


def test_all_reduces_are_billed_when_the_step_ends_not_when_their_future_completes():
    """NCCL completes a hook's future when the all-reduce is queued: seconds read there would be
    about 0. The hook holds its timings until the protocol's end of step settles them."""

    def worker(comm):
        protocol = DataParallel(comm, DDPConfig(), seed=7)
        model = protocol.setup(make_model, steps_per_epoch=10)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        comm.ledger.start_round(0)
        images, labels = _batch(0, comm.rank)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        before = [e for e in comm.ledger.round_entries if e.purpose == Purpose.train_sync]
        protocol.end_round(optimizer)
        after = [e for e in comm.ledger.round_entries if e.purpose == Purpose.train_sync]
        return len(before), len(after) > 0, all(e.seconds >= 0 for e in after)

    assert run_in_threads(2, worker) == [(0, True, True)] * 2
