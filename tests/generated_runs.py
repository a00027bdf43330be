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
    seconds_per_eval`` seconds. ``config`` is merged into the resolved config."""
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
        "platform/torch": "2.14.1",
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
            "time/elapsed_s": seconds_per_eval * len(accuracies),
        }
    )
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
