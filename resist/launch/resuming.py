"""Resuming a run directory: the checks before any worker starts, and the metrics file's continuation."""

from __future__ import annotations

import shutil

from resist.checkpoints import Checkpoint, CheckpointError, CheckpointStore, atomic_write
from resist.config import Config, plain
from resist.config.hydra_door import load_resolved_config, resolved_config_text
from resist.config.resume_rules import first_difference, trajectory
from resist.run_dir import RunDir
from resist.train.step_plan import saved_schedule, total_steps


def resume_checkpoint(cfg: Config, run_dir: RunDir) -> Checkpoint:
    """The newest checkpoint of ``run_dir``, checked (every shard's digest, the trajectory config, the
    run's length, a step before the end); raises :class:`CheckpointError` naming the problem.

    A run keeps its length until it has finished: another length (``train.epochs``,
    ``train.max_steps``) would change the learning rate of the steps it has left, so it is refused for
    a checkpoint before the saved end. A finished run may be extended: its schedule keeps its horizon
    (:attr:`resist.train.step_plan.StepPlan.schedule_steps`)."""
    checkpoint = CheckpointStore(run_dir).newest()
    if checkpoint is None:
        raise CheckpointError(
            f"resume: {run_dir} has no checkpoint (nothing committed in {run_dir.checkpoints}) "
            "(fix: start the run again; checkpoint.every_rounds sets how often a run saves one)"
        )
    checkpoint.verify()
    difference = first_difference(trajectory(checkpoint.manifest["config"]), trajectory(plain(cfg)))
    if difference is not None:
        key, saved, configured = difference
        raise CheckpointError(
            f"resume: checkpoint {checkpoint.directory} was written by another configuration: {key} is "
            f"{saved!r} there and {configured!r} in {run_dir.resolved_config} "
            "(fix: resume the run directory that wrote it, or move the foreign checkpoint away)"
        )
    total = total_steps(cfg.train, checkpoint.manifest["steps_per_epoch"])
    saved_total, _ = saved_schedule(checkpoint.manifest, total)
    if checkpoint.step < saved_total and total != saved_total:
        raise CheckpointError(
            f"resume: the run stopped at step {checkpoint.step} of {saved_total} and train.epochs/train.max_steps "
            f"now make it {total} steps, which would change the learning rate of the steps it has left (fix: "
            f"resume={run_dir} without changing its length, let it finish, then extend it)"
        )
    if checkpoint.step >= total:
        raise CheckpointError(
            f"resume: the run is complete (its newest checkpoint is at step {checkpoint.step} of {total}) "
            f"(fix: extend it, e.g. resume={run_dir} train.epochs={2 * cfg.train.epochs})"
        )
    return checkpoint


def prepare_resume(cfg: Config, run_dir: RunDir) -> Checkpoint:
    """Check the resume (:func:`resume_checkpoint`) and, when the command line changed resumable keys
    (e.g. ``train.epochs``), save ``cfg`` as the new ``resolved_config.yaml`` (atomically: a crash
    leaves the old one or the new one) after keeping the previous one as ``resolved_config.<n>.yaml``."""
    checkpoint = resume_checkpoint(cfg, run_dir)
    if load_resolved_config(run_dir) != plain(cfg):
        shutil.copy2(run_dir.resolved_config, run_dir.superseded_config())
        atomic_write(run_dir.resolved_config, resolved_config_text(cfg).encode("utf-8"))
    return checkpoint


def continue_metrics(run_dir: RunDir, checkpoint: Checkpoint) -> None:
    """Cut ``metrics.jsonl`` back to what it held when ``checkpoint`` was saved: the records written
    after it (the resumed run writes them again) move to ``metrics.after-step-<step>.jsonl``."""
    metrics = run_dir.metrics
    kept = checkpoint.manifest["metrics_bytes"]
    data = metrics.read_bytes() if metrics.exists() else b""
    if len(data) < kept:
        raise CheckpointError(
            f"resume: {metrics} is shorter ({len(data)} bytes) than when checkpoint {checkpoint.directory} was "
            f"saved ({kept} bytes) (fix: restore the run's metrics.jsonl)"
        )
    if len(data) > kept:
        run_dir.metrics_after_step(checkpoint.step).write_bytes(data[kept:])
        with metrics.open("r+b") as file:
            file.truncate(kept)


def resume_hint(run_dir: RunDir) -> str:
    """Where a stopped run can continue from, and the command that continues it."""
    checkpoint = CheckpointStore(run_dir).newest()
    if checkpoint is None:
        return f"no checkpoint was saved in {run_dir}"
    return (
        f"the newest checkpoint is step {checkpoint.step} ({checkpoint.directory}); continue with: "
        f"python -m resist.run resume={run_dir}"
    )
