"""Stop-and-resume on thread workers running the real loop: a run stopped at a round end and resumed
from its checkpoint ends bit for bit where the uninterrupted run ends, with the same records and
ledger totals (ResIST, ResIST with a warm-up that spans the stop, local SGD, both with int8
transfers, and DDP with PowerSGD)."""

from __future__ import annotations

import pytest
import torch

from resist.checkpoints import CheckpointStore
from resist.comm import Comm
from resist.comm.backends import run_in_threads
from resist.config import Compression, GradientCompression, ProtocolName
from resist.run_dir import RunDir
from resist.train.loop import train
from resist.train.stop import StopRequest
from tests.sim.test_records import WORKERS, _config
from tests.unit.test_loop import ListSink


class StopAtRound(StopRequest):
    """Agrees to stop at the end of round ``round_index`` (1-based), as a preemption signal would."""

    def __init__(self, round_index: int) -> None:
        super().__init__()
        self.round_index, self.rounds = round_index, 0

    def agreed(self, comm: Comm) -> bool:
        self.rounds += 1
        if self.rounds == self.round_index:
            self.signal_name = "SIGUSR2"
        return self.signal_name is not None


def _train(cfg, run_dir, *, stop_at=None, resume=False):
    sink = ListSink()
    checkpoint = CheckpointStore(run_dir).newest() if resume else None

    def work(comm):
        stop = StopAtRound(stop_at) if stop_at else None
        result = train(cfg, comm, sink, run_dir=run_dir, resume=checkpoint, stop=stop)
        totals = comm.ledger.state_dict()["cumulative"]
        return result, {p: {k: v for k, v in t.items() if k != "seconds"} for p, t in totals.items()}

    return sink.records, run_in_threads(WORKERS, work)


def _comparable(records):
    return [
        {k: v for k, v in r.items() if not k.startswith(("time/", "platform/", "memory/peak"))}
        for r in records
        if r["event"] in ("train", "eval", "summary")
    ]


CASES = {
    "resist": dict(protocol=ProtocolName.resist),
    "resist_warmup_spans_the_stop": dict(protocol=ProtocolName.resist, warmup_epochs=1, optimizer_state="keep"),
    "local_sgd": dict(protocol=ProtocolName.local_sgd),
    # int8: averaging anchors and stochastic-rounding draws are restored; the warm-up spans the stop
    "resist_int8_warmup": dict(protocol=ProtocolName.resist, warmup_epochs=1, compress=Compression.int8),
    "local_sgd_int8": dict(protocol=ProtocolName.local_sgd, compress=Compression.int8),
    # PowerSGD's residuals and factors are restored (its DDP keeps one bucket layout): stopped after
    # step 4 of 12, two steps into compression
    "ddp_powersgd": dict(protocol=ProtocolName.ddp, compress=GradientCompression.powersgd, stop_round=4),
}  # float32 DDP is resumed through processes (tests/e2e/test_survival.py): its reducer rebuilds its
# buckets after the first step of every process, so its operation count restarts with a resume.


@pytest.mark.parametrize("case", list(CASES))
def test_a_stopped_and_resumed_run_ends_bitwise_equal_to_an_uninterrupted_one(case, tmp_path):
    changes = dict(CASES[case])
    protocol = changes.pop("protocol")
    stop_round = changes.pop("stop_round", 2)  # default: of 4 rounds of 3 steps; the ResIST warm-up is 2 rounds
    if "optimizer_state" in changes:
        from resist.config import OptimizerStatePolicy

        changes["optimizer_state"] = OptimizerStatePolicy(changes["optimizer_state"])
    cfg = _config(protocol, eval_every=2, **changes)  # 12 steps: 4 rounds of 3 (ddp: 12 rounds of 1)
    cfg.checkpoint.every_rounds = 1
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    for d in (whole, interrupted):
        d.mkdir()
    records, results = _train(cfg, whole)
    first, stopped = _train(cfg, interrupted, stop_at=stop_round)
    assert [r["event"] for r, _ in stopped] == ["stopped"] * WORKERS
    assert CheckpointStore(interrupted).newest().step == stopped[0][0]["step"]
    resumed, finished = _train(cfg, interrupted, resume=True)

    assert _comparable(first + resumed) == _comparable(records)
    assert [r["event"] for r in resumed][0] == "resume"
    for (_, ledger), (_, ledger_resumed) in zip(results, finished, strict=True):
        assert ledger == ledger_resumed
    final = torch.load(RunDir(whole).final_model, weights_only=True)
    final_resumed = torch.load(RunDir(interrupted).final_model, weights_only=True)
    assert _same(final, final_resumed)
    store_whole, store_resumed = CheckpointStore(whole).newest(), CheckpointStore(interrupted).newest()
    for rank in range(WORKERS):
        a = store_whole.load_shard(rank, torch.device("cpu"))
        b = store_resumed.load_shard(rank, torch.device("cpu"))
        assert _same(a["optimizer"], b["optimizer"]) and _same(a["model"], b["model"])


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b
