"""Start a validated run: pre-flight checks, the run directory, the sinks, then the worker(s)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from resist.config import Config, DeviceKind
from resist.data.sources import check_available
from resist.errors import UserError
from resist.logging import FanOut, MetricSink, Record
from resist.logging.console import ConsoleSink
from resist.logging.jsonl import JsonlSink

log = logging.getLogger("resist")

METRICS_FILE = "metrics.jsonl"
RESOLVED_CONFIG_FILE = "resolved_config.yaml"


class RunDirError(UserError):
    pass


class DeviceError(UserError):
    pass


def resolve_device(kind: DeviceKind) -> torch.device:
    """CUDA for ``auto`` when available, else CPU; ``cuda`` without a GPU is a user error."""
    if kind == DeviceKind.cuda and not torch.cuda.is_available():
        raise DeviceError("device: device=cuda but no CUDA GPU is visible (fix: use device=cpu or device=auto)")
    use_cuda = kind == DeviceKind.cuda or (kind == DeviceKind.auto and torch.cuda.is_available())
    return torch.device("cuda", 0) if use_cuda else torch.device("cpu")


def prepare_run_dir(run_dir: Path, resolved: dict[str, Any]) -> None:
    """Create ``run_dir`` and write ``resolved_config.yaml``; refuse a directory that holds a run."""
    if (run_dir / METRICS_FILE).exists():
        raise RunDirError(
            f"hydra.run.dir: {run_dir} already holds a run ({METRICS_FILE}); refusing to overwrite it "
            "(fix: choose a new hydra.run.dir or move the old run away)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(resolved), run_dir / RESOLVED_CONFIG_FILE)


def run_name(cfg: Config) -> str:
    return f"{cfg.name}-{cfg.protocol.name.value}-S{cfg.num_workers}-seed{cfg.seed}"


def launch(cfg: Config, resolved: dict[str, Any], run_dir: Path) -> Record:
    """Check the data and device, set up ``run_dir`` and sinks, and train; return the summary."""
    check_available(cfg.dataset)
    device = resolve_device(cfg.device)
    prepare_run_dir(run_dir, resolved)
    from resist.train.loop import Worker, train

    sinks: list[MetricSink] = [JsonlSink(run_dir / METRICS_FILE), ConsoleSink(cfg.logger.progress)]
    if cfg.logger.wandb:
        from resist.logging.wandb_sink import WandbSink

        sinks.append(WandbSink(cfg.logger, run_dir, run_name(cfg), cfg.protocol.name.value, resolved))
    sink = FanOut(sinks)
    log.info("run %s on %s; run directory %s", run_name(cfg), device, run_dir)
    try:
        return train(cfg, Worker(0, 1, device), sink)
    finally:
        sink.close()
