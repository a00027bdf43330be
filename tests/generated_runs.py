"""Small finished run directories written without training (a ``resolved_config.yaml`` and a
``metrics.jsonl`` with a start record, one eval record per epoch and a summary), for the tests of
``python -m resist.compare`` and of the studies' analysis scripts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_run(
    path: Path,
    *,
    protocol: str,
    seed: int,
    accuracies: list[float],
    bytes_per_eval: float,
    workers: int = 2,
    local_steps: int = 10,
    seconds_per_eval: float = 2.0,
    config: dict[str, Any] | None = None,
) -> Path:
    """A finished run of ``workers`` workers evaluated after each epoch: ``accuracies[i]`` after
    epoch ``i + 1``, at ``(i + 1) × bytes_per_eval`` cumulative wire bytes and ``(i + 1) ×
    seconds_per_eval`` seconds; 10 rounds per epoch, each with one all-reduce per worker (and, for
    resist, one hand-off send and receive), half the wall-clock computing, 0.1 s per evaluation.
    ``config`` is merged into the resolved config."""
    path.mkdir(parents=True)
    resolved = {
        "name": f"generated_{protocol}",
        "seed": seed,
        "num_workers": workers,
        "model": {"arch": "preact_resnet_mini"},
        "dataset": {"name": "digits"},
        "protocol": {"name": protocol, "local_steps": local_steps},
        "train": {"epochs": len(accuracies), "eval_every": 1},
        "logger": {"wandb": False},
    }
    resolved = _merge(resolved, config or {})
    (path / "resolved_config.yaml").write_text(yaml.safe_dump(resolved))
    start = {
        "event": "start",
        "step": 0,
        "protocol": protocol,
        "num_workers": workers,
        "steps_per_round": local_steps,
        "num_rounds": 10 * len(accuracies),
        "platform/torch": "2.14.1",
        "platform/threads_per_worker": 1,
        "platform/host_cpus": 2,
    }
    records: list[dict[str, Any]] = [start]
    for epoch, accuracy in enumerate(accuracies, start=1):
        records.append(
            {
                "event": "eval",
                "step": 12 * epoch,
                "epoch": float(epoch),
                "test/acc1": accuracy,
                "comm/cum_wire_bytes": bytes_per_eval * epoch,
                "time/elapsed_s": seconds_per_eval * epoch,
            }
        )
    total = bytes_per_eval * len(accuracies)
    records.append(
        {
            "event": "summary",
            "step": 12 * len(accuracies),
            "test/acc1": accuracies[-1],
            "comm/cum_wire_bytes": total,
            "comm/cum_wire_bytes/init": 1e6,
            "comm/cum_wire_bytes/train_sync": total - 3e6,
            "comm/cum_wire_bytes/handoff": 1e6,
            "comm/cum_ops/train_sync": 10.0 * len(accuracies) * workers,
            "comm/cum_ops/handoff": 2.0 * 10 * len(accuracies) * workers if protocol == "resist" else 0.0,
            "epoch": float(len(accuracies)),
            "time/elapsed_s": seconds_per_eval * len(accuracies),
            "time/compute_s": 0.5 * seconds_per_eval * len(accuracies),
            "time/eval_s": 0.1 * len(accuracies),
        }
    )
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_bench(
    path: Path,
    *,
    model: str,
    workers: int,
    min_depth: int = 0,
    protocols: tuple[str, ...] = ("ddp", "local_sgd", "resist"),
    compress: str = "none",
    group: str = "resist",
) -> Path:
    """A ``bench.json`` as ``python -m resist.bench`` writes it, with round figures that scale
    simply: local SGD and DDP send 100 MB per round per worker and compute for 2 s, ResIST 40 MB and
    1 s; every protocol holds 200 MB and peaks at 1 GB (ResIST: half of both). Each protocol's run
    directory holds a start record: 1 thread per worker on a host of 2 CPUs. With ``compress``, the
    float32 ring local SGD reference is 400 MB. ``group``: the benchmark's protocol group (``ddp``
    has neither local steps nor a decomposition)."""
    path.mkdir(parents=True)
    figures = {}
    for protocol in protocols:
        resist = protocol == "resist"
        wire, compute = (40e6, 1.0) if resist else (100e6, 2.0)
        figures[protocol] = {
            "num_workers": workers,
            "steps_per_round": 1 if protocol == "ddp" else 2,
            "wire_bytes_per_round_per_worker": wire,
            "wire_bytes_per_local_steps_per_worker": wire * (2 if protocol == "ddp" else 1),
            "payload_bytes_per_round_per_worker": wire / 2,
            "table1_bytes_per_round": 2 * workers * (100e6 if resist else 200e6),
            "step_seconds": compute / 2,
            "images_per_second_per_worker": 8 / (compute / 2),
            "round_seconds": compute + 0.5,
            "compute_seconds_per_round": compute,
            "sync_seconds_per_round": 0.5,
            "train_sync_seconds_per_round": 0.3,
            "handoff_seconds_per_round": 0.1 if resist else 0.0,
            "operations_per_round_per_worker": 3.0 if resist else 1.0,
            "eval_seconds": 0.25,
            "param_bytes_per_worker": 100e6 if resist else 200e6,
            "param_bytes_per_worker_mean": 100e6 if resist else 200e6,
            "held_bytes_per_worker": 200e6 if resist else 400e6,
            "peak_memory_bytes_per_worker": 0.5e9 if resist else 1e9,
            "model_params": 50_000_000,
            "model_arch": model,
            "min_depth": min_depth,
        }
        figures[protocol]["expected_wire_bytes_per_round_per_worker"] = wire
        if resist:
            figures[protocol]["window_wire_bytes_per_round_per_worker"] = wire
    config = {
        "model": {"arch": model},
        "num_workers": workers,
        "train": {"batch_size": 8},
        "protocol": {"name": "ddp", "compress": compress}
        if group == "ddp"
        else {"name": group, "local_steps": 2, "decomposition": {"min_depth": min_depth}, "compress": compress},
    }
    reference = None if compress == "none" else 400e6
    report = {"config": config, "protocols": figures, "float32_ring_local_sgd_wire_bytes": reference}
    (path / "bench.json").write_text(json.dumps(report, indent=2))
    for protocol in protocols:  # each protocol's run directory starts with its platform facts
        start = {"event": "start", "protocol": protocol, "platform/threads_per_worker": 1, "platform/host_cpus": 2}
        (path / protocol).mkdir()
        (path / protocol / "metrics.jsonl").write_text(json.dumps(start) + "\n")
    return path
