"""The training loop: step plan, evaluation cadence, determinism on CPU."""

from __future__ import annotations

import pytest
import torch

from resist.comm.backends import run_in_threads
from resist.config import Config, DatasetName, EvalUnit
from resist.train.loop import train
from resist.train.step_plan import StepPlan
from tests.helpers import ListSink


def _config(**train_changes) -> Config:
    cfg = Config()
    cfg.dataset.name, cfg.dataset.image_size = DatasetName.digits, 8
    cfg.train.batch_size, cfg.train.log_every_steps = 64, 1
    for key, value in train_changes.items():
        setattr(cfg.train, key, value)
    return cfg


def _points(plan: StepPlan, due) -> list[int]:
    return [s for s in range(1, plan.total_steps + 1) if plan.ends_round(s) and due(s)]


def test_step_plan_in_epochs_and_steps():
    cfg = _config(epochs=4, eval_every=2, eval_unit=EvalUnit.epochs)
    plan = StepPlan.from_config(cfg.train, steps_per_epoch=23, steps_per_round=1)
    assert (plan.total_steps, plan.eval_every_steps, plan.num_rounds) == (92, 46, 92)
    assert _points(plan, plan.evaluates_after) == [46, 92]
    cfg = _config(epochs=4, max_steps=50, eval_every=20, eval_unit=EvalUnit.steps)
    plan = StepPlan.from_config(cfg.train, steps_per_epoch=23, steps_per_round=1)
    assert _points(plan, plan.evaluates_after) == [20, 40, 50]


def test_step_plan_with_rounds():
    """Rounds of 50 steps, 391 steps per epoch (the paper's CIFAR setup): evaluation at the first round
    end at or after each epoch, logging at round ends only, and a short last round."""
    cfg = _config(epochs=2, eval_every=1, eval_unit=EvalUnit.epochs, log_every_steps=10)
    plan = StepPlan.from_config(cfg.train, steps_per_epoch=391, steps_per_round=50)
    assert (plan.total_steps, plan.num_rounds) == (782, 16)
    assert [s for s in range(1, 783) if plan.ends_round(s)] == [*range(50, 782, 50), 782]
    assert _points(plan, plan.evaluates_after) == [400, 782]
    assert _points(plan, plan.logs_after) == [*range(50, 782, 50), 782]
    cfg = _config(epochs=2, eval_every=3, eval_unit=EvalUnit.rounds, log_every_steps=120)
    plan = StepPlan.from_config(cfg.train, steps_per_epoch=391, steps_per_round=50)
    assert _points(plan, plan.evaluates_after) == [150, 300, 450, 600, 750, 782]
    assert _points(plan, plan.logs_after) == [150, 250, 400, 500, 600, 750, 782]


def _train(cfg: Config) -> list[dict]:
    sink = ListSink()
    run_in_threads(1, lambda comm: train(cfg, comm, sink))
    return sink.records


def _numbers(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "memory/peak"))} for r in records]


def test_training_is_deterministic_on_cpu_for_a_seed():
    cfg = _config(epochs=1, max_steps=6, eval_every=3, eval_unit=EvalUnit.steps)
    first, second = _train(cfg), _train(cfg)
    assert _numbers(first) == _numbers(second)
    cfg.seed = 1
    assert _numbers(_train(cfg)) != _numbers(first)


def test_records_follow_the_plan():
    records = _train(_config(epochs=1, max_steps=5, eval_every=2, eval_unit=EvalUnit.steps))
    assert [r["event"] for r in records] == [
        "start",
        "train",
        "train",
        "eval",
        "train",
        "train",
        "eval",
        "train",
        "eval",
        "summary",
    ]
    assert [r["step"] for r in records if r["event"] == "train"] == [1, 2, 3, 4, 5]
    assert [r["samples"] for r in records if r["event"] == "train"] == [64, 128, 192, 256, 320]
    assert records[-1]["test/acc1"] == records[-2]["test/acc1"]
    assert records[0]["total_steps"] == 5 and records[0]["steps_per_epoch"] == 23


def test_schedule_reaches_the_optimizer():
    cfg = _config(epochs=1, max_steps=4)
    cfg.optim.lr, cfg.optim.milestones = 0.1, [0.5, 0.75]
    lrs = [r["lr"] for r in _train(cfg) if r["event"] == "train"]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_no_global_torch_state_leaks_between_runs():
    """Seeds are derived inside train(): a run is unaffected by what ran before it, and draws nothing
    from torch's global generator."""
    cfg = _config(epochs=1, max_steps=2)
    torch.manual_seed(12345)
    torch.rand(100)
    state = torch.get_rng_state()
    a = _train(cfg)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)
    assert _numbers(_train(cfg)) == _numbers(a)


def test_speed_options_run_on_cpu():
    """bf16 autocast and channels-last are valid on every device (here: CPU, 2 steps)."""
    from resist.config import AmpMode

    cfg = _config(epochs=1, max_steps=2)
    plain = _train(cfg)
    cfg.train.amp = AmpMode.bf16
    bf16 = _train(cfg)
    cfg.train.channels_last = True
    both = _train(cfg)
    losses = [[r["train/loss"] for r in records if r["event"] == "train"] for records in (plain, bf16, both)]
    assert losses[0][0] != losses[1][0]  # the first step's forward ran in bf16
    assert both[-1]["event"] == "summary" and both[-1]["step"] == 2
    assert all(0 <= records[-1]["test/acc1"] * 360 == round(records[-1]["test/acc1"] * 360) for records in (bf16, both))
