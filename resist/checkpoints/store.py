"""Whole-run checkpoints on disk: one shard per worker and a manifest that commits them.

Layout: ``<run dir>/checkpoints/step-<step, 9 digits>/`` holds ``rank-<r>.pt`` (worker r's state,
written by worker r), ``rank-<r>.sha256`` (its digest) and, once every shard is there,
``manifest.json`` (written last, by rank 0). A checkpoint exists only when its manifest does, and is
valid only when every shard it lists has the recorded size and SHA-256. Every file is written
atomically (temporary file, fsync, rename, fsync of the directory), so a crash during a save leaves
the previous checkpoint loadable and the new one absent. Shards are loaded with
``torch.load(weights_only=True)``: tensors and plain data only, no pickled code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from resist.errors import UserError
from resist.run_dir import RunDir

FORMAT = 1
_MANIFEST = "manifest.json"


class CheckpointError(UserError):
    pass


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either its old content or all of ``data``."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def synced_size(path: Path) -> int:
    """The size of ``path`` once all of it is on disk (fsync of the file and of its folder's entry),
    0 when it does not exist: what a manifest may record of a file another handle appends to."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0
    try:
        os.fsync(descriptor)
        size = os.fstat(descriptor).st_size
    finally:
        os.close(descriptor)
    _fsync_directory(path.parent)
    return size


def _fsync_directory(path: Path) -> None:
    """Make the entries of ``path`` (a rename, a new file or folder) durable."""
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """A committed checkpoint: its directory and manifest (``step``, ``world_size``, ``shards`` and
    the facts the run recorded with it)."""

    directory: Path
    manifest: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.manifest["step"])

    @property
    def world_size(self) -> int:
        return int(self.manifest["world_size"])

    def shard_path(self, rank: int) -> Path:
        return self.directory / f"rank-{rank}.pt"

    def verify(self) -> None:
        """Check that every shard is there with its recorded size and digest (reads them all)."""
        for rank in range(self.world_size):
            self._verified_bytes(rank)

    def _verified_bytes(self, rank: int) -> bytes:
        path, expected = self.shard_path(rank), self.manifest["shards"][rank]
        fix = (
            f"move {self.directory} out of {self.directory.parent} to resume from the checkpoint before it, "
            "or start a new run"
        )
        if not path.is_file():
            raise CheckpointError(f"resume: checkpoint shard {path} is missing (fix: {fix})")
        data = path.read_bytes()
        if len(data) != expected["bytes"] or _sha256(data) != expected["sha256"]:
            raise CheckpointError(
                f"resume: checkpoint shard {path} is corrupt ({len(data)} bytes, {expected['bytes']} recorded; "
                f"SHA-256 differs from the manifest's) (fix: {fix})"
            )
        return data

    def load_shard(self, rank: int, device: torch.device) -> dict[str, Any]:
        """Worker ``rank``'s state, verified against the manifest, its tensors on ``device``."""
        data = self._verified_bytes(rank)
        return torch.load(io.BytesIO(data), map_location=device, weights_only=True)


class CheckpointStore:
    """The checkpoints of one run directory."""

    def __init__(self, run_dir: RunDir) -> None:
        self.root = run_dir.checkpoints

    def step_dir(self, step: int) -> Path:
        return self.root / f"step-{step:09d}"

    def write_shard(self, step: int, rank: int, state: dict[str, Any]) -> None:
        """Save worker ``rank``'s ``state`` (tensors and plain data) for ``step``, and its digest."""
        directory = self.step_dir(step)
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            _fsync_directory(self.root)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        atomic_write(directory / f"rank-{rank}.pt", data)
        atomic_write(directory / f"rank-{rank}.sha256", f"{_sha256(data)} {len(data)}\n".encode())

    def commit(self, step: int, *, world_size: int, facts: dict[str, Any]) -> Checkpoint:
        """Once every worker wrote its shard of ``step``: write the manifest (``facts`` recorded in it)."""
        directory = self.step_dir(step)
        shards = []
        for rank in range(world_size):
            digest, size = (directory / f"rank-{rank}.sha256").read_text(encoding="utf-8").split()
            shards.append({"file": f"rank-{rank}.pt", "bytes": int(size), "sha256": digest})
        manifest = {**facts, "format": FORMAT, "step": step, "world_size": world_size, "shards": shards}
        atomic_write(directory / _MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
        return Checkpoint(directory, manifest)

    def prune(self, *, keep: int) -> None:
        """Delete all but the newest ``keep`` committed checkpoints, and the saves a crash interrupted
        (no manifest) older than the newest. A folder whose manifest cannot be read is left alone."""
        committed = self.committed(strict=False)
        if not committed:
            return
        doomed = [c.directory for c in committed[: max(0, len(committed) - keep)]]
        doomed += [
            d for d in self._step_dirs() if not (d / _MANIFEST).exists() and self._step_of(d) < committed[-1].step
        ]
        for directory in doomed:
            shutil.rmtree(directory, ignore_errors=True)

    def _step_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(d for d in self.root.iterdir() if d.is_dir() and d.name.startswith("step-"))

    @staticmethod
    def _step_of(directory: Path) -> int:
        return int(directory.name.removeprefix("step-"))

    def committed(self, *, strict: bool = True) -> list[Checkpoint]:
        """Checkpoints with a manifest, oldest first (their shards are not read here). A manifest that
        cannot be read raises :class:`CheckpointError` (``strict``) or is skipped; one that is gone
        by the time it is read (pruned meanwhile) is not a checkpoint."""
        found = []
        for directory in self._step_dirs():
            try:
                found.append(self._read_manifest(directory))
            except FileNotFoundError:
                continue  # a save a crash interrupted, or a checkpoint pruned while listing
            except CheckpointError:
                if strict:
                    raise
        return found

    def at(self, step: int) -> Checkpoint:
        """The committed checkpoint of ``step`` (raises CheckpointError when its manifest is missing or
        cannot be read)."""
        directory = self.step_dir(step)
        try:
            return self._read_manifest(directory)
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint {directory} has no manifest: it was never committed") from None

    def _read_manifest(self, directory: Path) -> Checkpoint:
        """``directory``'s checkpoint; FileNotFoundError without a manifest, CheckpointError naming the
        fix for one that does not read as this version's manifest."""
        path = directory / _MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if manifest.get("format") != FORMAT:
                raise ValueError(f"format {manifest.get('format')!r}, this version reads {FORMAT}")
        except FileNotFoundError:
            raise
        except (OSError, ValueError, AttributeError) as exc:
            raise CheckpointError(
                f"resume: checkpoint manifest {path} cannot be read ({exc}) (fix: move {directory} out of "
                f"{self.root} to resume from the checkpoint before it)"
            ) from None
        return Checkpoint(directory, manifest)

    def newest(self) -> Checkpoint | None:
        """The newest committed checkpoint (raises on an unreadable manifest: never a silent fallback)."""
        committed = self.committed()
        return committed[-1] if committed else None
