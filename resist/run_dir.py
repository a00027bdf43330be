"""The layout of a run directory: every file a run writes, named in one place (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    """A run's directory (``runs/<name>/<timestamp>/`` or ``hydra.run.dir``) and what lies in it."""

    path: Path

    @property
    def resolved_config(self) -> Path:
        """The run's complete, resolved config: what every worker trains with."""
        return self.path / "resolved_config.yaml"

    @property
    def metrics(self) -> Path:
        """``metrics.jsonl``: one record per line, written by rank 0."""
        return self.path / "metrics.jsonl"

    @property
    def run_log(self) -> Path:
        """``run.log``: the log lines the console showed (Hydra's job log in the launching process,
        and rank 0's lines: progress, evaluations), appended to by both."""
        return self.path / "run.log"

    @property
    def final_model(self) -> Path:
        """The final global model, an ordinary checkpoint of the plain network."""
        return self.path / "final_model.pt"

    @property
    def checkpoints(self) -> Path:
        """Whole-run checkpoints (:mod:`resist.checkpoints`), one folder per saved step."""
        return self.path / "checkpoints"

    @property
    def wandb_run_id(self) -> Path:
        """The W&B run id, so that a restarted run continues the same W&B run."""
        return self.path / "wandb_run_id"

    @property
    def slurm(self) -> Path:
        """submitit's folder: one subfolder per SLURM job, with the tasks' logs."""
        return self.path / "slurm"

    @property
    def bench_report(self) -> Path:
        """``bench.json`` of a ``python -m resist.bench`` run."""
        return self.path / "bench.json"

    def metrics_bytes(self) -> int:
        """How much of ``metrics.jsonl`` is written (0 before it exists)."""
        return self.metrics.stat().st_size if self.metrics.exists() else 0

    def holds_run(self) -> bool:
        """Whether a run has already written here (its metrics)."""
        return self.metrics.exists()
