"""The layout of a run directory: every file a run writes, named in one place (pure).

Past the entry points (``python -m resist.run``'s Hydra job, ``python -m resist.worker``, the
benchmark, the analyses' command lines) a run directory travels as a :class:`RunDir`, never as a bare
path, so that every file name below has one owner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunDir:
    """A run's directory (``runs/<name>/<timestamp>/`` or ``hydra.run.dir``) and what lies in it."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)

    @property
    def resolved_config(self) -> Path:
        """The run's complete, resolved config: what every worker trains with."""
        return self.path / "resolved_config.yaml"

    def superseded_config(self) -> Path:
        """``resolved_config.<n>.yaml`` with the first free ``n`` from 1: where the config a resume
        replaced (a longer ``train.epochs``, ...) is kept."""
        n = 1
        while (self.path / f"resolved_config.{n}.yaml").exists():
            n += 1
        return self.path / f"resolved_config.{n}.yaml"

    @property
    def metrics(self) -> Path:
        """``metrics.jsonl``: one record per line, written by rank 0."""
        return self.path / "metrics.jsonl"

    def metrics_after_step(self, step: int) -> Path:
        """A free ``metrics.after-step-<step>.jsonl``: the records a resume from the checkpoint of
        ``step`` cut from ``metrics.jsonl`` (the resumed run writes them again)."""
        return free_name(self.path / f"metrics.after-step-{step}.jsonl")

    def metrics_before_restart(self, restarts: int) -> Path:
        """A free ``metrics.before-restart-<restarts>.jsonl``: the records of a requeued SLURM job that
        had no checkpoint and starts again."""
        return free_name(self.path / f"metrics.before-restart-{restarts}.jsonl")

    @property
    def lock(self) -> Path:
        """``.lock``: held (``flock``) by rank 0 while the run trains; holds its pid and host."""
        return self.path / ".lock"

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

    def bench_protocol_run(self, protocol: str) -> RunDir:
        """The run directory of one protocol's run inside a ``python -m resist.bench`` directory."""
        return RunDir(self.path / protocol)

    def metrics_bytes(self) -> int:
        """How much of ``metrics.jsonl`` is written (0 before it exists)."""
        return self.metrics.stat().st_size if self.metrics.exists() else 0

    def holds_run(self) -> bool:
        """Whether a run has already written here (its metrics)."""
        return self.metrics.exists()

    def last_record(self) -> dict[str, Any]:
        """The last record of ``metrics.jsonl`` ({} before there is one): a finished run's is its
        ``summary``."""
        lines = self.metrics.read_text(encoding="utf-8").strip().splitlines() if self.metrics.exists() else []
        return json.loads(lines[-1]) if lines else {}


def free_name(path: Path) -> Path:
    """``path``, or ``path`` with ``.1``, ``.2``, ... before its suffix when it exists."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate
