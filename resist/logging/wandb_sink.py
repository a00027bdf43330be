"""Weights & Biases sink; ``wandb`` is imported only when this sink is built."""

from __future__ import annotations

import uuid
from typing import Any

from resist.config import LoggerConfig
from resist.logging import Record
from resist.run_dir import RunDir

X_AXES = ("comm/cum_wire_bytes", "time/elapsed_s", "epoch")


class WandbSink:
    """One W&B run per training run; metrics are plotted against ``step`` (and can be against any
    other logged key, e.g. ``comm/cum_wire_bytes`` or ``time/elapsed_s``). Offline when
    ``WANDB_MODE=offline`` or ``logger.wandb_mode=offline``; files go to ``<run_dir>/wandb``. The run
    id is kept in ``<run_dir>/wandb_run_id`` and reused (``resume="allow"``) when the run restarts or
    is resumed, so it continues the same W&B run."""

    def __init__(
        self, cfg: LoggerConfig, run_dir: RunDir, *, run_name: str, job_type: str, config: dict[str, Any]
    ) -> None:
        import wandb

        id_file = run_dir.wandb_run_id
        if not id_file.exists():  # saved first, so a requeued job continues the same W&B run
            id_file.write_text(uuid.uuid4().hex[:16] + "\n", encoding="utf-8")
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            group=cfg.group,
            job_type=job_type,
            name=run_name,
            id=id_file.read_text(encoding="utf-8").strip(),
            resume="allow",
            tags=list(cfg.tags),
            config=config,
            dir=str(run_dir.path),
            mode=cfg.wandb_mode.value if cfg.wandb_mode else None,
            settings=wandb.Settings(quiet=True),  # no history block at the end, under the run's own result lines
        )
        self.run.define_metric("step")
        # Axes to choose in a panel besides the step (W&B's UI offers custom x-axes only once they are
        # defined, wandb#11533): test/acc1 against comm/cum_wire_bytes, time/elapsed_s or epoch.
        for axis in X_AXES:
            self.run.define_metric(axis)
        for pattern in ("train/*", "test/*", "time/*", "comm/*", "memory/*", "lr", "samples"):
            self.run.define_metric(pattern, step_metric="step")

    def log(self, record: Record) -> None:
        values = {key: value for key, value in record.items() if key != "event"}
        if record["event"] in ("start", "summary"):
            self.run.summary.update(values)
        if record["event"] not in ("start", "resume"):
            # W&B's own step is the optimizer step: a resumed run's records up to the step W&B already
            # has (written before the stop, the same values) are dropped by W&B, not duplicated.
            self.run.log(values, step=record["step"])

    def close(self) -> None:
        self.run.finish()
