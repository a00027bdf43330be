"""ResIST on in-process thread workers (float64): aggregation, hand-off, sub-network equivalence,
test-time scaling and the memory each worker holds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resist.comm import Op
from resist.comm.backends import run_in_threads
from resist.config import BatchNormMode, OptimizerStatePolicy
from resist.models.preact import build_model, count_parameters
from resist.models.spec import ARCHITECTURES
from resist.protocols.base import model_state_tensors
from tests.helpers import RESIST_ARCH as ARCH
from tests.helpers import RESIST_BLOCKS as BLOCKS
from tests.helpers import RESIST_STAGE as STAGE
from tests.helpers import resist_config as _config
from tests.helpers import resist_protocol as _resist
from tests.helpers import stage_index, unit_block


def model_factory(batchnorm: BatchNormMode = BatchNormMode.batch_stats):
    def make_model(held_blocks=None, initialize=True, meta=False):
        seed = 0 if initialize and not meta else None
        return build_model(
            ARCHITECTURES[ARCH],
            3,
            in_channels=1,
            batchnorm=batchnorm,
            held_blocks=held_blocks,
            init_seed=seed,
            device="meta" if meta else None,
        ).double()

    return make_model


make_model = model_factory()


def _train(model, optimizer, rank: int, round_index: int, steps: int = 2) -> None:
    for step in range(steps):
        g = torch.Generator().manual_seed(1000 * round_index + 10 * step + rank)
        images, labels = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(3, (6,), generator=g)
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()


def _blocks(model, ids):
    return {b: [t.detach().clone() for t in model_state_tensors(unit_block(model, b))] for b in ids}


def _shared(protocol):
    return [t.detach().clone() for t in protocol._shared_tensors(protocol.model)]


@pytest.mark.parametrize(
    ("workers", "min_depth", "batchnorm"),
    [(2, 0, BatchNormMode.batch_stats), (3, 3, BatchNormMode.batch_stats), (4, 3, BatchNormMode.running_stats)],
)
def test_a_round_averages_over_holders_and_hands_blocks_to_their_next_holders(workers, min_depth, batchnorm):
    """Parameters and, with running statistics, BatchNorm buffers: each global value is the mean over
    the workers that held it (a copy for one holder), and the next holders receive exactly it."""

    def worker(comm):
        protocol = _resist(comm, _config(workers, min_depth))
        model = protocol.setup(model_factory(batchnorm), steps_per_epoch=100)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        before = protocol.current
        own_before = before.blocks[comm.rank]
        assert model.held_block_ids(STAGE) == (0, *map(stage_index, own_before))
        shared_params = count_parameters(model) - sum(count_parameters(unit_block(model, b)) for b in own_before)
        _train(model, optimizer, comm.rank, 0)
        pre_blocks, pre_shared = _blocks(model, own_before), _shared(protocol)
        protocol.end_round(optimizer)
        after = protocol.current
        post_blocks = _blocks(model, after.blocks[comm.rank])
        x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
        model.eval()  # (train mode would update running statistics before the global model is assembled)
        sub_output = model(x)
        full = protocol.eval_model()
        scales = [full.block(STAGE, b).residual_scale for b in range(9)]
        global_blocks, global_shared = _blocks(full, BLOCKS), [t.clone() for t in model_state_tensors(full)]
        full.scale_residual_branches(STAGE, map(stage_index, BLOCKS), 1.0)
        full.scale_residual_branches(STAGE, [stage_index(b) for b in BLOCKS if b not in after.blocks[comm.rank]], 0.0)
        return {
            "before": before,
            "after": after,
            "pre_blocks": pre_blocks,
            "pre_shared": pre_shared,
            "post_blocks": post_blocks,
            "global_blocks": global_blocks,
            "scales": scales,
            "sub_equals_global": torch.equal(sub_output, full.eval()(x)),
            "optimizer_state": len(optimizer.state),
            "shared_params": shared_params,
            "global_shared_first": global_shared[0],
            "shared_first": pre_shared[0],
            "held_param_count": count_parameters(model),
        }

    results = run_in_threads(workers, worker)
    before, after = results[0]["before"], results[0]["after"]
    assert before != after and all(r["before"] == before and r["after"] == after for r in results)
    for b in BLOCKS:
        copies = [results[h]["pre_blocks"][b] for h in before.holders(b)]
        for k, value in enumerate(results[0]["global_blocks"][b]):
            expected = torch.stack([c[k] for c in copies]).mean(dim=0)
            if len(copies) == 1:
                assert torch.equal(value, copies[0][k])  # one holder: a copy
            else:
                torch.testing.assert_close(value, expected, rtol=1e-13, atol=1e-15)
        for h in after.holders(b):  # the next holders got exactly the global block
            assert all(
                torch.equal(a, c)
                for a, c in zip(results[h]["post_blocks"][b], results[0]["global_blocks"][b], strict=True)
            )
    shared_mean = torch.stack([r["shared_first"] for r in results]).mean(dim=0)
    torch.testing.assert_close(results[0]["global_shared_first"], shared_mean, rtol=1e-13, atol=1e-15)
    scale = max(1 / workers, min_depth / len(BLOCKS))
    for r in results:
        assert r["scales"] == [1.0] + [scale] * 8
        assert r["sub_equals_global"]
        assert r["optimizer_state"] == 0  # reset each round (the paper)
        assert r["held_param_count"] == r["shared_params"] + len(r["post_blocks"]) * count_parameters(
            make_model().block(STAGE, 1)
        )


def test_without_test_time_scaling_the_global_model_keeps_residual_branches_at_one():
    """``test_time_scaling=false`` (an ablation): the evaluated model's partitioned blocks keep scale 1."""

    def worker(comm):
        cfg = _config(2, 0)
        cfg.protocol.test_time_scaling = False
        protocol = _resist(comm, cfg)
        protocol.setup(model_factory(), steps_per_epoch=100)
        full = protocol.eval_model()
        return [full.block(STAGE, b).residual_scale for b in range(9)]

    assert run_in_threads(2, worker) == [[1.0] * 9] * 2


def test_momentum_travels_with_its_block():
    def worker(comm):
        protocol = _resist(comm, _config(2, 0, OptimizerStatePolicy.keep))
        model = protocol.setup(make_model, steps_per_epoch=100)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        _train(model, optimizer, comm.rank, 0)
        momentum = {
            b: [optimizer.state[p]["momentum_buffer"].clone() for p in unit_block(model, b).parameters()]
            for b in protocol.current.blocks[comm.rank]
        }
        before = protocol.current
        protocol.end_round(optimizer)
        arrived = {
            b: [optimizer.state[p]["momentum_buffer"].clone() for p in unit_block(model, b).parameters()]
            for b in protocol.current.blocks[comm.rank]
        }
        sent = {e.peer: e.payload_bytes for e in comm.ledger.round_entries if e.op == Op.send}
        return momentum, arrived, before, protocol.current, sent

    results = run_in_threads(2, worker)
    momentum_before = {**results[0][0], **results[1][0]}
    for _, arrived, _, _, _ in results:
        for b, buffers in arrived.items():
            assert all(torch.equal(x, y) for x, y in zip(buffers, momentum_before[b], strict=True))
    # Each block that changes holder carries its parameters and one momentum buffer per parameter.
    block_bytes = 2 * count_parameters(make_model().block(STAGE, 1)) * 8  # float64
    before, after = results[0][2], results[0][3]
    for rank, (_, _, _, _, sent) in enumerate(results):
        moved = [b for b in BLOCKS if before.holders(b) == (rank,) and after.holders(b) != (rank,)]
        assert sent == ({1 - rank: len(moved) * block_bytes} if moved else {})


def test_kept_momentum_travels_even_when_a_worker_skipped_every_step():
    """A worker whose round's steps were all skipped (as fp16 loss scaling does on overflow) has no
    momentum buffers; its blocks still travel in the model's own layout, with zero momentum."""

    def worker(comm):
        protocol = _resist(comm, _config(2, 0, OptimizerStatePolicy.keep))
        model = protocol.setup(make_model, steps_per_epoch=100)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if comm.rank == 0:
            _train(model, optimizer, comm.rank, 0)
        before = protocol.current
        protocol.end_round(optimizer)
        arrived = {
            b: [optimizer.state[p]["momentum_buffer"] for p in unit_block(model, b).parameters()]
            for b in protocol.current.blocks[comm.rank]
        }
        return before, arrived

    (before, arrived0), (_, arrived1) = run_in_threads(2, worker, timeout_s=20, nccl_model=True)
    for b, buffers in arrived0.items():
        if before.holders(b) == (1,):  # came from the worker that never stepped
            assert all(torch.equal(m, torch.zeros_like(m)) for m in buffers)
    assert any(before.holders(b) == (1,) for b in arrived0) or any(before.holders(b) == (0,) for b in arrived1)


def test_warmup_trains_the_whole_model_then_switches_to_sub_networks():
    def worker(comm):
        cfg = _config(2, 0)
        cfg.protocol.warmup_epochs = 1
        protocol = _resist(comm, cfg)
        model = protocol.setup(make_model, steps_per_epoch=3)  # 2 warm-up rounds of 2 steps
        held = [count_parameters(model)]
        replacements, averaged_whole, sub = [], None, None
        for round_index in range(3):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            _train(model, optimizer, comm.rank, round_index)
            replacement = protocol.end_round(optimizer)
            if replacement is not None:  # the switch: the averaged whole model, then the sub-ResNet
                averaged_whole = {k: v.clone() for k, v in model.state_dict().items()}
                sub = {k: v.clone() for k, v in replacement.state_dict().items()}
                sub_blocks = replacement.held_block_ids(STAGE)
            replacements.append(replacement is not None)
            model = replacement or model
            held.append(count_parameters(model))
        return held, replacements, protocol.eval_model(), averaged_whole, sub, sub_blocks

    (held, replacements, full0, whole0, sub0, blocks0), (_, _, full1, whole1, _, _) = run_in_threads(2, worker)
    whole = count_parameters(make_model())
    assert held[:2] == [whole, whole] and held[2] < whole and replacements == [False, True, False]
    assert all(torch.equal(a, b) for a, b in zip(full0.state_dict().values(), full1.state_dict().values(), strict=True))
    # The sub-ResNet starts from the averaged whole model: every tensor it holds, under its global name.
    assert all(torch.equal(a, b) for a, b in zip(whole0.values(), whole1.values(), strict=True))
    slot_of = {f"stages.{STAGE}.blocks.{slot}.": f"stages.{STAGE}.blocks.{b}." for slot, b in enumerate(blocks0)}
    for name, value in sub0.items():
        prefix = next((p for p in slot_of if name.startswith(p)), None)
        global_name = slot_of[prefix] + name[len(prefix) :] if prefix else name
        assert torch.equal(value, whole0[global_name]), name


def test_compiled_sub_networks_do_not_recompile_when_slots_change_blocks():
    """Slots keep the module structure fixed, so torch.compile traces each worker's sub-ResNet once,
    however the blocks move between rounds (the eager backend: tracing and guards without codegen)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()

    def worker(comm):
        protocol = _resist(comm, _config(2, 0))
        model = protocol.setup(make_model, steps_per_epoch=100)
        compiled = torch.compile(model, backend="eager")
        for round_index in range(4):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            _train(compiled, optimizer, comm.rank, round_index)
            protocol.end_round(optimizer)
        return protocol.round

    assert run_in_threads(2, worker) == [4, 4]
    assert counters["stats"]["unique_graphs"] == 2  # one per worker, not one per round
