"""Weights & Biases sink; ``wandb`` is imported only when this sink is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resist.config import LoggerConfig
from resist.logging import Record


class WandbSink:
    """One W&B run per training run; metrics are plotted against ``step`` (and can be against any
    other logged key, e.g. ``time/elapsed_s``). Offline when ``WANDB_MODE=offline`` or
    ``logger.wandb_mode=offline``; files go to ``<run_dir>/wandb``."""

    def __init__(self, cfg: LoggerConfig, run_dir: Path, run_name: str, job_type: str, config: dict[str, Any]):
        import wandb

        self._wandb = wandb
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            group=cfg.group,
            job_type=job_type,
            name=run_name,
            tags=list(cfg.tags),
            config=config,
            dir=str(run_dir),
            mode=cfg.wandb_mode.value if cfg.wandb_mode else None,
        )
        self.run.define_metric("step")
        for pattern in ("train/*", "test/*", "time/*", "comm/*", "memory/*", "lr", "epoch", "samples"):
            self.run.define_metric(pattern, step_metric="step")

    def log(self, record: Record) -> None:
        values = {key: value for key, value in record.items() if key != "event"}
        if record["event"] in ("start", "summary"):
            self.run.summary.update(values)
        if record["event"] != "start":
            self.run.log(values)

    def close(self) -> None:
        self.run.finish()
