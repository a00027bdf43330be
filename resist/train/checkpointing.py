"""How a run saves its checkpoint: every worker's shard (:meth:`resist.train.run_state.Run.state_dict`),
then rank 0's manifest."""

from __future__ import annotations

import time

from resist.checkpoints import Checkpoint, CheckpointStore, synced_size
from resist.config import plain
from resist.config.resume_rules import trajectory
from resist.run_dir import RunDir
from resist.train.run_state import Run


def save_checkpoint(run: Run, run_dir: RunDir, *, metrics_bytes: int | None = None) -> Checkpoint:
    """Every worker writes its shard of ``run.step`` (a round end); once all have, rank 0 commits the
    checkpoint (manifest with the run's trajectory config, its length and learning-rate schedule's
    horizon, its platform facts, the W&B run id and how much of ``metrics.jsonl`` belongs before it:
    ``metrics_bytes``, default all written so far; the file is on disk before the manifest records
    that) and prunes old ones, while the other workers read the new checkpoint's manifest only.
    Returns the checkpoint, on every worker.

    The workers wait for each other here: writing a shard must take less than
    ``launcher.collective_timeout_s``."""
    store, comm, step = CheckpointStore(run_dir), run.comm, run.step
    store.write_shard(step, comm.rank, run.state_dict())
    comm.barrier()
    if comm.rank == 0:
        id_file = run_dir.wandb_run_id
        wandb_id = id_file.read_text(encoding="utf-8").strip() if id_file.exists() else None
        written = synced_size(run_dir.metrics)  # a host crash cannot leave it shorter than the manifest says
        facts = {
            "config": trajectory(plain(run.cfg)),
            "protocol": run.protocol.name,
            "round": run.plan.rounds_done(step),
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
