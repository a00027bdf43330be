"""Whole-run checkpoints: per-worker shards committed by a manifest, written atomically."""

from resist.checkpoints.store import Checkpoint, CheckpointError, CheckpointStore, atomic_write, synced_size

__all__ = ["Checkpoint", "CheckpointError", "CheckpointStore", "atomic_write", "synced_size"]
