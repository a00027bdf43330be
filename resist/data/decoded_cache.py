"""Decoded copies of image-folder splits, so a folder of small JPEGs (CIFAR as class folders) is
decoded once per machine, not once per worker and run.

An entry is named by a fingerprint of its split's listing: every file's path relative to the split
root, label, size and modification time. Changing, adding or removing an image names another entry,
so a stale copy is never read. An entry is written whole to a temporary file and renamed into place.
A lock file next to it makes the first worker decode while the others on the machine wait and then
read its entry. An entry holds the images only (labels come from the listing). One that does not
load, or holds another number of images, is decoded again and replaced, with a warning: the cache
only ever holds derived data.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from resist.data.datasets import DatasetError

log = logging.getLogger(__name__)

FORMAT = "resist-decoded-v1"  # in the fingerprint: a new layout of entries names new entries


def fingerprint(split_dir: Path, samples: list[tuple[str, int]]) -> str:
    """Hex sha256 of the split's listing (relative path, label, size in bytes, mtime in ns, per file)."""
    digest = hashlib.sha256(FORMAT.encode())
    for path, label in samples:
        stat = os.stat(path)
        relative = os.path.relpath(path, split_dir)
        digest.update(f"\n{relative}\t{label}\t{stat.st_size}\t{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def entry_path(cache_dir: Path, split_dir: Path, samples: list[tuple[str, int]]) -> Path:
    """Where the decoded copy of ``split_dir`` (listed as ``samples``) lives under ``cache_dir``."""
    return cache_dir / f"{split_dir.name}-{len(samples)}-{fingerprint(split_dir, samples)[:32]}.pt"


def check_cache_dir(cache_dir: str) -> None:
    """Raises DatasetError naming ``dataset.cache_dir`` when it cannot be created or written."""
    where = Path(cache_dir).expanduser()
    try:
        where.mkdir(parents=True, exist_ok=True)
        writable = os.access(where, os.W_OK | os.X_OK)
    except OSError as exc:
        raise DatasetError(
            f"dataset.cache_dir: cannot create {where} ({exc.strerror}) "
            "(fix: set dataset.cache_dir to a writable directory, or dataset.cache_dir=null to decode every run)"
        ) from exc
    if not writable:
        raise DatasetError(
            f"dataset.cache_dir: {where} is not writable "
            "(fix: set dataset.cache_dir to a writable directory, or dataset.cache_dir=null to decode every run)"
        )


def load_or_decode(
    split_dir: Path, samples: list[tuple[str, int]], decode: Callable[[], torch.Tensor], *, cache_dir: str | None
) -> torch.Tensor:
    """``decode()``'s uint8 images (N, C, H, W) of the split listed as ``samples``: read from the
    split's entry under ``cache_dir`` when there is one, else decoded and stored there (``cache_dir``
    None: decoded, nothing stored)."""
    if cache_dir is None:
        return decode()
    where = Path(cache_dir).expanduser()
    where.mkdir(parents=True, exist_ok=True)
    entry = entry_path(where, split_dir, samples)
    with _locked(entry.with_name(entry.name + ".lock")):
        stored = _read(entry, len(samples))
        if stored is not None:
            log.info("data: %s read from its decoded copy %s", split_dir, entry)
            return stored
        decoded = decode()
        temporary = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
        try:
            torch.save({"format": FORMAT, "images": decoded}, temporary)
            os.replace(temporary, entry)
        finally:
            temporary.unlink(missing_ok=True)  # a write that failed (a full disk) leaves nothing behind
        log.info("data: %s decoded, its copy kept at %s", split_dir, entry)
        return decoded


def _read(entry: Path, count: int) -> torch.Tensor | None:
    """The entry's images, or None when there is none or it is not a whole entry of
    ``count`` images (then it is decoded again: a warning names it)."""
    if not entry.exists():
        return None
    try:
        stored = torch.load(entry, weights_only=True)
        images = stored["images"]
        whole = stored["format"] == FORMAT and images.dtype == torch.uint8 and images.ndim == 4 and len(images) == count
    except Exception as exc:  # a truncated or foreign file: any error of the unpickler
        log.warning("data: the decoded copy %s does not load (%s): decoding again", entry, exc)
        return None
    if not whole:
        log.warning("data: the decoded copy %s is not a whole copy of its split: decoding again", entry)
        return None
    return images


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``lock_file`` (created if needed) for the block."""
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
