"""What the records report, on thread workers running the real loop: every byte of the ledgers,
and evaluation that never changes training."""

from __future__ import annotations

import pytest
import torch

from resist.comm import Purpose
from resist.comm.backends import run_in_threads
from resist.config import Config, OptimizerStatePolicy, ProtocolName
from resist.run_dir import RunDir
from resist.train.loop import train
from tests.helpers import LOOP_WORKERS, ListSink, loop_config


def _run(cfg: Config, run_dir: RunDir | None = None):
    sink = ListSink()
    ledgers = run_in_threads(LOOP_WORKERS, lambda comm: train(cfg, comm, sink, run_dir=run_dir) and comm.ledger)
    return sink.records, ledgers


@pytest.mark.parametrize("protocol", [ProtocolName.resist, ProtocolName.local_sgd, ProtocolName.ddp])
def test_the_summary_equals_the_ledgers_per_purpose(protocol):
    records, ledgers = _run(loop_config(protocol, eval_every=2))
    summary = records[-1]
    for purpose in Purpose:
        payload = sum(ledger.cumulative[purpose].payload_bytes for ledger in ledgers)
        wire = sum(ledger.cumulative[purpose].wire_bytes for ledger in ledgers)
        assert summary[f"comm/cum_payload_bytes/{purpose.value}"] == payload, purpose
        assert summary[f"comm/cum_wire_bytes/{purpose.value}"] == pytest.approx(wire, rel=1e-12), purpose
    assert summary["comm/cum_payload_bytes"] == sum(ledger.total().payload_bytes for ledger in ledgers)
    assert summary["comm/cum_payload_bytes/eval"] > 0 and summary["final_model"]


def test_each_eval_record_includes_its_own_evaluation():
    """Local SGD's evaluation all-reduces 4 float64 sums per worker: the k-th eval record has k of them."""
    records, _ = _run(loop_config(ProtocolName.local_sgd, eval_every=1))
    evals = [r for r in records if r["event"] == "eval"]
    assert len(evals) == 4
    for k, record in enumerate(evals, start=1):
        assert record["comm/cum_payload_bytes/eval"] == k * 4 * 8 * LOOP_WORKERS
        assert record["comm/cum_wire_bytes/eval"] == k * 4 * 8 * LOOP_WORKERS * 2 * (LOOP_WORKERS - 1) / LOOP_WORKERS


@pytest.mark.parametrize(
    ("protocol", "changes"),
    [
        (ProtocolName.resist, {}),
        (ProtocolName.resist, {"warmup_epochs": 1, "optimizer_state": OptimizerStatePolicy.keep}),
        (ProtocolName.local_sgd, {}),
    ],
)
def test_the_evaluation_cadence_does_not_change_training(tmp_path, protocol, changes):
    finals, losses = [], []
    for eval_every in (1, 4):
        run_dir = tmp_path / f"every{eval_every}"
        run_dir.mkdir()
        records, _ = _run(loop_config(protocol, eval_every, **changes), RunDir(run_dir))
        finals.append(torch.load(RunDir(run_dir).final_model, weights_only=True)["state_dict"])
        losses.append([r["train/loss"] for r in records if r["event"] == "train"])
    assert losses[0] == losses[1]
    assert finals[0].keys() == finals[1].keys()
    assert all(torch.equal(finals[0][k], finals[1][k]) for k in finals[0])
