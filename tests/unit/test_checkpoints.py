"""The checkpoint store (atomic writes, manifests, digests, pruning) and what a resume may change."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from resist.checkpoints import CheckpointError, CheckpointStore
from resist.config import ConfigError
from resist.config.resume_rules import check_resume_overrides, first_difference, trajectory
from resist.run_dir import RunDir

CPU = torch.device("cpu")


def _save(store: CheckpointStore, step: int, *, world_size: int = 2, keep: int = 2):
    for rank in range(world_size):
        store.write_shard(step, rank, {"step": step, "weights": torch.full((3,), float(step + rank))})
    checkpoint = store.commit(step, world_size=world_size, facts={"config": {"seed": 0}})
    store.prune(keep=keep)
    return checkpoint


def test_shards_round_trip_through_a_committed_manifest(tmp_path):
    store = CheckpointStore(RunDir(tmp_path))
    checkpoint = _save(store, 7)
    assert store.newest() == checkpoint and checkpoint.step == 7 and checkpoint.world_size == 2
    assert torch.equal(checkpoint.load_shard(1, CPU)["weights"], torch.full((3,), 8.0))
    assert checkpoint.manifest["config"] == {"seed": 0}


def test_only_the_newest_keep_checkpoints_stay(tmp_path):
    store = CheckpointStore(RunDir(tmp_path))
    for step in (2, 4, 6, 8):
        _save(store, step, keep=2)
    assert [c.step for c in store.committed()] == [6, 8]


def test_a_checkpoint_pruned_while_another_worker_lists_them_is_not_an_error(tmp_path, monkeypatch):
    """Rank 0 prunes right after a commit while the other workers read the new checkpoint: a listed
    folder that is gone by the time its manifest is read is skipped, and each worker reads only the
    new step's manifest (:meth:`CheckpointStore.at`)."""
    store = CheckpointStore(RunDir(tmp_path))
    for step in (2, 4):
        _save(store, step, keep=5)
    read_text = Path.read_text

    def pruned_meanwhile(path: Path, *args, **kwargs) -> str:
        if path.parent.name == "step-000000002":  # listed and seen, then removed by rank 0
            shutil.rmtree(path.parent)
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", pruned_meanwhile)
    assert [c.step for c in store.committed()] == [4] and store.newest().step == 4
    assert store.at(4) == store.newest()
    with pytest.raises(CheckpointError, match=r"step-000000002 has no manifest: it was never committed"):
        store.at(2)


def test_a_failure_between_write_and_rename_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    store = CheckpointStore(RunDir(tmp_path))
    _save(store, 4)
    real_replace = os.replace

    def crash_on_manifest(src, dst):
        if str(dst).endswith("manifest.json"):
            raise OSError("power failure")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_manifest)
    with pytest.raises(OSError, match="power failure"):
        _save(store, 8)
    monkeypatch.setattr(os, "replace", real_replace)
    newest = store.newest()
    assert newest is not None and newest.step == 4
    newest.verify()
    assert torch.equal(newest.load_shard(0, CPU)["weights"], torch.full((3,), 4.0))
    _save(store, 12)  # the next save removes the interrupted one
    assert [c.step for c in store.committed()] == [4, 12]
    assert not store.step_dir(8).exists()


def test_a_crash_while_writing_a_shard_leaves_no_partial_file(tmp_path, monkeypatch):
    store = CheckpointStore(RunDir(tmp_path))

    def crash(src, dst):
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.write_shard(3, 0, {"weights": torch.ones(2)})
    assert not (store.step_dir(3) / "rank-0.pt").exists() and store.newest() is None


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_a_damaged_shard_is_refused_naming_it(tmp_path, damage):
    checkpoint = _save(CheckpointStore(RunDir(tmp_path)), 5)
    shard = checkpoint.shard_path(1)
    data = shard.read_bytes()
    if damage == "truncate":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        shard.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    else:
        shard.unlink()
    with pytest.raises(CheckpointError, match=f"resume: checkpoint shard {shard}"):
        checkpoint.verify()
    with pytest.raises(CheckpointError):
        checkpoint.load_shard(1, CPU)
    checkpoint.load_shard(0, CPU)  # the other worker's shard is intact


def test_a_resume_may_change_only_what_keeps_the_trajectory():
    assert check_resume_overrides(["resume=/r", "train.epochs=9", "logger=wandb", "+launcher.wait=true"]) == [
        "train.epochs",
        "logger",
        "launcher.wait",
    ]
    for override in ("optim.lr=0.3", "protocol=ddp", "num_workers=4", "train.batch_size=8", "seed=1"):
        with pytest.raises(ConfigError, match="would change the trajectory"):
            check_resume_overrides([override])


def test_the_trajectory_leaves_out_resumable_keys_and_differences_are_named():
    saved = {"seed": 0, "train": {"epochs": 3, "batch_size": 64}, "logger": {"wandb": False}, "resume": None}
    assert trajectory(saved) == {"seed": 0, "train": {"batch_size": 64}}
    other = {"seed": 0, "train": {"batch_size": 32}}
    assert first_difference(trajectory(saved), other) == ("train.batch_size", 64, 32)
    assert first_difference(trajectory(saved), trajectory(saved)) is None


def test_a_requeued_slurm_job_resumes_the_run_its_directory_holds(tmp_path):
    from resist.launch.start import continue_requeued

    requeued = {"SLURM_RESTART_COUNT": "1"}
    assert not continue_requeued(RunDir(tmp_path), requeued)  # no run here yet
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    _save(CheckpointStore(RunDir(tmp_path)), 3)
    assert continue_requeued(RunDir(tmp_path), requeued)
    assert not continue_requeued(RunDir(tmp_path), {"SLURM_RESTART_COUNT": "0"}) and not continue_requeued(
        RunDir(tmp_path), {}
    )


def test_a_requeued_slurm_job_without_checkpoint_starts_again_keeping_its_records(tmp_path):
    from resist.launch.start import continue_requeued

    (tmp_path / "metrics.jsonl").write_text('{"event": "start"}\n')
    assert not continue_requeued(RunDir(tmp_path), {"SLURM_RESTART_COUNT": "2"})
    assert not (tmp_path / "metrics.jsonl").exists()
    assert (tmp_path / "metrics.before-restart-2.jsonl").read_text() == '{"event": "start"}\n'


def test_an_unreadable_manifest_is_refused_not_skipped(tmp_path):
    store = CheckpointStore(RunDir(tmp_path))
    _save(store, 2)
    _save(store, 4)
    (store.step_dir(4) / "manifest.json").write_text("{trunc")
    with pytest.raises(CheckpointError, match="manifest .*step-000000004/manifest.json cannot be read"):
        store.newest()
    store.prune(keep=1)  # never deletes what it cannot read
    assert store.step_dir(4).exists() and store.step_dir(2).exists()


def test_the_global_generators_round_trip_through_a_weights_only_shard():
    import io
    import random

    import numpy as np

    from resist.generators import global_rng_state, restore_global_rng_state

    buffer = io.BytesIO()
    torch.save(global_rng_state(), buffer)
    drawn = (random.random(), np.random.rand(), torch.rand(3))
    restore_global_rng_state(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert drawn[:2] == again[:2] and torch.equal(drawn[2], again[2])


def test_only_the_gpus_visible_get_their_saved_generator_state():
    from resist.generators import present_cuda_states

    saved = [torch.full((4,), 1, dtype=torch.uint8), torch.full((4,), 2, dtype=torch.uint8)]
    assert present_cuda_states(saved, 0) == []
    one = present_cuda_states(saved, 1)
    assert len(one) == 1 and torch.equal(one[0], saved[0])
    more = present_cuda_states(saved, 4)  # GPUs 2 and 3 keep their state
    assert len(more) == 2 and torch.equal(more[1], saved[1])


def test_a_state_saved_with_more_gpus_than_visible_restores_the_rest():
    """A shard saved on a host with one more GPU than this one (none here without CUDA): restoring it
    never fails, and the other generators are restored."""
    import random

    from resist.generators import global_rng_state, restore_global_rng_state

    state = global_rng_state()
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    state["cuda"] = [torch.cuda.get_rng_state(i) for i in range(visible)] + [torch.zeros(16, dtype=torch.uint8)]
    drawn = (random.random(), torch.rand(3))
    restore_global_rng_state(state)
    again = (random.random(), torch.rand(3))
    assert drawn[0] == again[0] and torch.equal(drawn[1], again[1])


def test_the_synced_size_of_a_file_is_read_after_its_fsync(tmp_path, monkeypatch):
    from resist.checkpoints import synced_size

    synced: list[str] = []
    real_fsync = os.fsync

    def spy(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", spy)
    metrics = tmp_path / "metrics.jsonl"
    assert synced_size(metrics) == 0 and synced == []
    with metrics.open("a") as file:  # (another handle, as the run's metric sink holds, flushed not synced)
        file.write('{"event": "start"}\n')
        file.flush()
        assert synced_size(metrics) == 19
    assert synced == [str(metrics), str(tmp_path)]
