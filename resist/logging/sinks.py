"""The sinks a run's records go to, built in one place: ``metrics.jsonl``, the console and, when
``logger.wandb``, W&B under the run's name."""

from __future__ import annotations

import os
from collections.abc import Mapping

from resist.config import Config, plain
from resist.logging import FanOut, MetricSink
from resist.logging.console import ConsoleSink
from resist.logging.jsonl import JsonlSink
from resist.run_dir import RunDir


def run_name(cfg: Config, environ: Mapping[str, str] = os.environ) -> str:
    """``<name>-<protocol>-S<workers>-seed<seed>``, plus ``-<array job>_<task>`` in a SLURM job array."""
    name = f"{cfg.name}-{cfg.protocol.name.value}-S{cfg.num_workers}-seed{cfg.seed}"
    if "SLURM_ARRAY_JOB_ID" in environ and "SLURM_ARRAY_TASK_ID" in environ:
        name += f"-{environ['SLURM_ARRAY_JOB_ID']}_{environ['SLURM_ARRAY_TASK_ID']}"
    return name


def run_sinks(cfg: Config, run_dir: RunDir, *, resuming: bool) -> FanOut:
    """Rank 0's sinks for the run in ``run_dir``: its ``metrics.jsonl`` (appended to when ``resuming``),
    the console, and W&B (with the run's resolved config) when ``cfg.logger.wandb``."""
    sinks: list[MetricSink] = [
        JsonlSink(run_dir.metrics, append=resuming),
        ConsoleSink(cfg.logger.progress),
    ]
    if cfg.logger.wandb:
        from resist.logging.wandb_sink import WandbSink

        sinks.append(
            WandbSink(cfg.logger, run_dir, run_name=run_name(cfg), job_type=cfg.protocol.name.value, config=plain(cfg))
        )
    return FanOut(sinks)
