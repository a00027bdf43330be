"""Stop-and-resume on thread workers running the real loop: a run stopped at a round end and resumed
from its checkpoint ends bit for bit where the uninterrupted run ends, with the same records and
ledger totals (ResIST, ResIST with a warm-up that spans the stop, local SGD, both with int8
transfers, DDP with PowerSGD; ResIST on torchvision's ResNet-18 and ViT, local SGD on its
ResNet-50; DiLoCo in float32 and with int4 and AdamW, ResIST with the outer optimizer in float32
and with int4 and co-held blocks). A finished run extended keeps its learning-rate schedule, and its resume record says
what changed; the metrics are on disk before a manifest records their length."""

from __future__ import annotations

import json
import os

import pytest
import torch

from resist.checkpoints import CheckpointStore
from resist.comm import Comm
from resist.comm.backends import run_in_threads
from resist.config import (
    BatchNormMode,
    Compression,
    GradientCompression,
    ModelConfig,
    OptimizerName,
    OptimizerStatePolicy,
    OuterOptimizerName,
    ProtocolName,
)
from resist.logging.jsonl import JsonlSink
from resist.run_dir import RunDir
from resist.train.loop import train
from resist.train.schedule import lr_at
from resist.train.stop import StopRequest
from tests.helpers import LOOP_WORKERS, ListSink, loop_config


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
    checkpoint = CheckpointStore(RunDir(run_dir)).newest() if resume else None

    def work(comm):
        stop = StopAtRound(stop_at) if stop_at else None
        result = train(cfg, comm, sink, run_dir=RunDir(run_dir), resume=checkpoint, stop=stop)
        totals = comm.ledger.state_dict()["cumulative"]
        return result, {p: {k: v for k, v in t.items() if k != "seconds"} for p, t in totals.items()}

    return sink.records, run_in_threads(LOOP_WORKERS, work)


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
    # torchvision's networks: ResNet-18's four stages are partitioned, so sub-networks are rebuilt
    # whenever a worker's blocks per stage change (its BatchNorm keeps running statistics)
    "resist_tv_resnet18": dict(
        protocol=ProtocolName.resist,
        model=dict(arch="tv_resnet18", batchnorm=BatchNormMode.running_stats, cifar_stem=True, width=4),
    ),
    "resist_vit_tiny_int8": dict(
        protocol=ProtocolName.resist, compress=Compression.int8, model=dict(arch="vit_tiny", patch_size=4)
    ),
    "local_sgd_tv_resnet50": dict(
        protocol=ProtocolName.local_sgd,
        model=dict(arch="tv_resnet50", batchnorm=BatchNormMode.running_stats, cifar_stem=True, width=2),
    ),
    # DiLoCo: the round's start and the outer momenta are restored, and AdamW's inner state
    "diloco": dict(protocol=ProtocolName.diloco),
    "diloco_int4_adamw": dict(protocol=ProtocolName.diloco, compress=Compression.int4, optim="adamw"),
    # ResIST with the outer optimizer: block outer momenta travel; co-held blocks
    # (minimum depth 6 of 8 blocks on 2 workers) are stepped at their aggregators; int4 keeps an
    # error-feedback residual for the shared layers
    "resist_outer": dict(protocol=ProtocolName.resist, outer_optimizer="nesterov"),
    "resist_outer_int4_co_held": dict(
        protocol=ProtocolName.resist, outer_optimizer="nesterov", compress=Compression.int4, min_depth=6
    ),
}  # float32 DDP is resumed through processes (tests/e2e/test_survival.py): its reducer rebuilds its
# buckets after the first step of every process, so its operation count restarts with a resume.


@pytest.mark.parametrize("case", list(CASES))
def test_a_stopped_and_resumed_run_ends_bitwise_equal_to_an_uninterrupted_one(case, tmp_path):
    changes = dict(CASES[case])
    protocol = changes.pop("protocol")
    stop_round = changes.pop("stop_round", 2)  # default: of 4 rounds of 3 steps; the ResIST warm-up is 2 rounds
    if "optimizer_state" in changes:
        changes["optimizer_state"] = OptimizerStatePolicy(changes["optimizer_state"])
    if "outer_optimizer" in changes:
        changes["outer_optimizer"] = OuterOptimizerName(changes["outer_optimizer"])
    model, optimizer, min_depth = changes.pop("model", None), changes.pop("optim", None), changes.pop("min_depth", 0)
    cfg = loop_config(protocol, eval_every=2, **changes)  # 12 steps: 4 rounds of 3 (ddp: 12 rounds of 1)
    if model is not None:
        cfg.model = ModelConfig(**model)
    if optimizer is not None:
        cfg.optim.name, cfg.optim.lr = OptimizerName(optimizer), 1e-3
    if min_depth:
        cfg.protocol.decomposition.min_depth = min_depth
    cfg.checkpoint.every_rounds = 1
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    for d in (whole, interrupted):
        d.mkdir()
    records, results = _train(cfg, whole)
    first, stopped = _train(cfg, interrupted, stop_at=stop_round)
    assert [r["event"] for r, _ in stopped] == ["stopped"] * LOOP_WORKERS
    assert CheckpointStore(RunDir(interrupted)).newest().step == stopped[0][0]["step"]
    resumed, finished = _train(cfg, interrupted, resume=True)

    assert _comparable(first + resumed) == _comparable(records)
    assert [r["event"] for r in resumed][0] == "resume"
    for (_, ledger), (_, ledger_resumed) in zip(results, finished, strict=True):
        assert ledger == ledger_resumed
    final = torch.load(RunDir(whole).final_model, weights_only=True)
    final_resumed = torch.load(RunDir(interrupted).final_model, weights_only=True)
    assert _same(final, final_resumed)
    store_whole, store_resumed = CheckpointStore(RunDir(whole)).newest(), CheckpointStore(RunDir(interrupted)).newest()
    for rank in range(LOOP_WORKERS):
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


def _rates(records: list[dict]) -> list[tuple[int, float]]:
    return [(r["step"], r["lr"]) for r in records if r["event"] == "train"]


def test_an_extended_finished_run_keeps_its_schedule_and_its_resume_record_says_what_changed(tmp_path):
    cfg = loop_config(ProtocolName.local_sgd, eval_every=2)  # 12 steps: 4 rounds of 3, train records every 3
    _train(cfg, tmp_path)
    last_scheduled = lr_at(11, 12, cfg.optim)  # 0.0005; a 24-step schedule would give step 14 0.005
    cfg.train.epochs, cfg.train.max_steps = 10, 24
    resumed, _ = _train(cfg, tmp_path, resume=True)
    facts = ("event", "step", "total_steps", "previous_total_steps", "schedule_steps", "bitwise", "platform_changes")
    assert {k: resumed[0][k] for k in facts} == {
        "event": "resume",
        "step": 12,
        "total_steps": 24,
        "previous_total_steps": 12,
        "schedule_steps": 12,
        "bitwise": True,
        "platform_changes": [],
    }
    assert resumed[0]["platform/device"] == "cpu" and resumed[0]["platform/torch"] == torch.__version__
    assert [(r["step"], r["lr"]) for r in resumed if r["event"] == "train"] == [
        (s, last_scheduled) for s in (15, 18, 21, 24)
    ]
    newest = CheckpointStore(RunDir(tmp_path)).newest()
    assert (newest.step, newest.manifest["total_steps"], newest.manifest["schedule_steps"]) == (24, 24, 12)

    # extended again, on a host with another torch (as far as the checkpoint says): the same horizon
    manifest = dict(newest.manifest, platform={**newest.manifest["platform"], "platform/torch": "0.0"})
    (newest.directory / "manifest.json").write_text(json.dumps(manifest))
    cfg.train.max_steps = 30
    again, _ = _train(cfg, tmp_path, resume=True)
    assert {k: again[0][k] for k in facts} == {
        "event": "resume",
        "step": 24,
        "total_steps": 30,
        "previous_total_steps": 24,
        "schedule_steps": 12,
        "bitwise": False,
        "platform_changes": [f"platform/torch: 0.0 -> {torch.__version__}"],
    }
    assert [(r["step"], r["lr"]) for r in again if r["event"] == "train"] == [
        (27, last_scheduled),
        (30, last_scheduled),
    ]


def test_the_metrics_are_on_disk_before_a_manifest_records_their_length(tmp_path, monkeypatch):
    cfg = loop_config(ProtocolName.local_sgd, eval_every=2)
    cfg.checkpoint.every_rounds, cfg.checkpoint.keep = 1, 10
    synced: list[tuple[str, int]] = []  # (path, size) of every fsync, in order
    real_fsync = os.fsync

    def spy(descriptor: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{descriptor}"), os.fstat(descriptor).st_size))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", spy)
    sink = JsonlSink(RunDir(tmp_path).metrics)
    run_in_threads(LOOP_WORKERS, lambda comm: train(cfg, comm, sink, run_dir=RunDir(tmp_path)))
    sink.close()
    checkpoints = CheckpointStore(RunDir(tmp_path)).committed()
    assert [c.step for c in checkpoints] == [3, 6, 9, 12]
    metrics = str(RunDir(tmp_path).metrics)
    for checkpoint in checkpoints:
        manifest_sync = next(
            i for i, (path, _) in enumerate(synced) if f"{checkpoint.directory}/.manifest.json" in path
        )
        on_disk = max((size for path, size in synced[:manifest_sync] if path == metrics), default=-1)
        assert on_disk >= checkpoint.manifest["metrics_bytes"] > 0, checkpoint.step
