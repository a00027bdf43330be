"""A worker's whole training state, as checkpoint shards hold it, and how the run saves it.

A shard holds what worker r needs to continue bit for bit: its (sub-)model's weights and buffers,
optimizer and gradient-scaler state, the protocol's state (round, assignment, warm-up), the data
stream's position, every random generator (python, numpy, torch CPU and CUDA), its byte ledger and
its reporter's accumulators. The learning rate is a function of the step, so the step restores it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resist.checkpoints import Checkpoint, CheckpointStore, synced_size
from resist.config import plain
from resist.config.resume import trajectory
from resist.generators import global_rng_state, restore_global_rng_state
from resist.run_dir import RunDir

if TYPE_CHECKING:  # (build.py restores shards with this module)
    from resist.train.build import Run

SHARD_FORMAT = 1


def worker_state(run: Run, *, step: int, last_eval: dict[str, float]) -> dict[str, Any]:
    """Worker ``run.comm.rank``'s shard after ``step`` optimizer steps (a round end)."""
    return {
        "format": SHARD_FORMAT,
        "step": step,
        "model": run.protocol.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "protocol": run.protocol.state_dict(),
        "stream": run.stream.state_dict(),
        "ledger": run.comm.ledger.state_dict(),
        "reporter": run.reporter.state_dict(),
        "last_eval": dict(last_eval),
        "rng": global_rng_state(),
    }


def restore_worker_state(run: Run, shard: dict[str, Any]) -> None:
    """Load what :func:`worker_state` saved into a run built for it (the protocol already rebuilt its
    module from ``shard["protocol"]``)."""
    run.protocol.model.load_state_dict(shard["model"])
    run.optimizer.load_state_dict(shard["optimizer"])
    run.scaler.load_state_dict(shard["scaler"])
    run.stream.load_state_dict(shard["stream"])
    run.comm.ledger.load_state_dict(shard["ledger"])
    run.reporter.load_state_dict(shard["reporter"])
    restore_global_rng_state(shard["rng"])


def saved_schedule(checkpoint: Checkpoint, total_steps: int) -> tuple[int, int]:
    """The length of the run that wrote ``checkpoint`` and its learning-rate schedule's horizon, as
    its manifest records them; a checkpoint written before they were recorded reads as a run of
    ``total_steps`` (the resuming run's length) on its own schedule."""
    saved_total = checkpoint.manifest.get("total_steps", total_steps)
    return saved_total, checkpoint.manifest.get("schedule_steps", saved_total)


def save_checkpoint(
    run: Run, run_dir: Path, *, step: int, last_eval: dict[str, float], metrics_bytes: int | None = None
) -> Checkpoint:
    """Every worker writes its shard of ``step``; once all have, rank 0 commits the checkpoint
    (manifest with the run's trajectory config, its length and learning-rate schedule's horizon, its
    platform facts, the W&B run id and how much of ``metrics.jsonl`` belongs before it:
    ``metrics_bytes``, default all written so far; the file is on disk before the manifest records
    that) and prunes old ones, while the other workers read the new checkpoint's manifest only.
    Returns the checkpoint, on every worker.

    The workers wait for each other here: writing a shard must take less than
    ``launcher.collective_timeout_s``."""
    store, comm = CheckpointStore(run_dir), run.comm
    store.write_shard(step, comm.rank, worker_state(run, step=step, last_eval=last_eval))
    comm.barrier()
    if comm.rank == 0:
        paths = RunDir(run_dir)
        wandb_id = paths.wandb_run_id.read_text(encoding="utf-8").strip() if paths.wandb_run_id.exists() else None
        written = synced_size(paths.metrics)  # a host crash cannot leave it shorter than the manifest says
        facts = {
            "config": trajectory(plain(run.cfg)),
            "protocol": run.protocol.name,
            "round": -(-step // run.plan.steps_per_round),
            "epoch": step / run.plan.steps_per_epoch,
            "steps_per_epoch": run.plan.steps_per_epoch,
            "total_steps": run.plan.total_steps,
            "schedule_steps": run.plan.schedule_steps,
            "platform": run.platform,
            "metrics_bytes": metrics_bytes if metrics_bytes is not None else written,
            "wandb_run_id": wandb_id,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        store.commit(step, world_size=comm.size, facts=facts)
    comm.barrier()  # no worker goes on (or stops) before the checkpoint is committed
    checkpoint = store.at(step)  # this step's manifest only: rank 0 may be pruning older ones already
    if comm.rank == 0:
        store.prune(keep=run.cfg.checkpoint.keep)
    return checkpoint
