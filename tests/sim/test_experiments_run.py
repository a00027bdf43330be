"""Every recipe in conf/experiment/ runs: composed with +debug=fast (2 steps, tiny synthetic data,
CPU), validated, and trained by its protocol on as many thread workers as it asks for.

Recipes that differ only in their dataset compose, under +debug=fast, to the same config but for
their name (cifar10_ddp and cifar100_ddp); such a config is trained once, and the recipes that share
it are checked against that run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from resist.comm.backends import run_in_threads
from resist.config import register_schemas, to_typed_config, validate
from resist.train.loop import train
from tests.helpers import ListSink

CONF = Path(__file__).resolve().parents[2] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
_TRAINED: dict[str, list[dict]] = {}  # the config but for its name -> the records of its run


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_trains_two_steps(experiment):
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        composed = compose("config", overrides=[f"+experiment={experiment}", "+debug=fast"])
    cfg = to_typed_config(composed)
    validate(cfg)
    assert cfg.name == experiment and cfg.train.max_steps == 2 and cfg.device.value == "cpu"
    training = repr(dataclasses.replace(cfg, name=""))
    if training not in _TRAINED:
        sink = ListSink()
        run_in_threads(cfg.num_workers, lambda comm: train(cfg, comm, sink), timeout_s=300)
        _TRAINED[training] = sink.records
    records = _TRAINED[training]
    summary = records[-1]
    assert summary["event"] == "summary" and summary["step"] == 2 and "test/acc1" in summary
    assert records[0]["protocol"] == cfg.protocol.name.value and records[0]["num_workers"] == cfg.num_workers
