"""Decoded copies of image-folder splits, so a folder of small JPEGs (CIFAR as class folders) is
decoded once per machine, not once per worker and run.

An entry holds a split's images in listing order (the reader orders them, and labels come from the
listing). It is named by a fingerprint of the listing: every file's path relative to the split root,
label, size and modification time, so changing, adding or removing an image names another entry.
:data:`FORMAT` is part of the fingerprint: change it when the decoding changes. An entry is written
whole to a temporary file and renamed into place, so a reader sees a whole entry or none; a lock
file next to it makes the first worker that misses decode while the others on the machine wait and
then read its entry. The cache only holds derived data: an entry that does not load, or holds
another number of images, is decoded again and replaced, and a cache that cannot be used (a full
disk, a file system without locks) is skipped; each with a warning.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import torch

from resist.data.datasets import DatasetError

log = logging.getLogger(__name__)

FORMAT = "resist-decoded-v2"  # v2: images in listing order
_FIX = "fix: set dataset.cache_dir to a writable directory, or dataset.cache_dir=null to decode every run"


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
    """Raises DatasetError naming ``dataset.cache_dir`` when it is empty or could not be created or
    written; creates nothing."""
    if not cache_dir.strip():
        raise DatasetError(f"dataset.cache_dir: the directory name is empty ({_FIX})")
    where = Path(cache_dir).expanduser()
    existing = where
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DatasetError(f"dataset.cache_dir: cannot create {where}: {existing} is not a directory ({_FIX})")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DatasetError(f"dataset.cache_dir: cannot write in {existing} ({_FIX})")


def load_or_decode(
    split_dir: Path, samples: list[tuple[str, int]], decode: Callable[[], torch.Tensor], *, cache_dir: str | None
) -> torch.Tensor:
    """``decode()``'s uint8 images (N, C, H, W) of the split listed as ``samples``, in listing order:
    read from the split's entry under ``cache_dir`` when there is one, else decoded and stored there
    (``cache_dir`` None: decoded, nothing stored). A DatasetError of ``decode`` propagates."""
    if cache_dir is None:
        return decode()
    where = Path(cache_dir).expanduser()
    entry = entry_path(where, split_dir, samples)
    stored = _read(entry, len(samples), split_dir, warn=False)  # without the lock: a present entry is whole
    if stored is not None:
        return stored
    try:
        where.mkdir(parents=True, exist_ok=True)
        lock = _lock(entry.with_name(entry.name + ".lock"))
    except OSError as exc:
        log.warning("data: decoded copies cannot be kept in %s (%s): decoding %s", where, exc, split_dir)
        return decode()
    with lock:  # closing the file releases the lock
        stored = _read(entry, len(samples), split_dir)  # another worker may have written it meanwhile
        if stored is not None:
            return stored
        decoded = decode()
        _store(entry, decoded)
        return decoded


def _read(entry: Path, count: int, split_dir: Path, *, warn: bool = True) -> torch.Tensor | None:
    """The entry's images (logged as ``split_dir``'s), or None when there is none or it is not a
    whole entry of ``count`` images (with ``warn``, a warning names it; it is then decoded again)."""
    if not entry.exists():
        return None
    try:
        stored = torch.load(entry, weights_only=True)
        images = stored["images"]
        whole = stored["format"] == FORMAT and images.dtype == torch.uint8 and images.ndim == 4 and len(images) == count
    except Exception as exc:  # a truncated or foreign file: any error of the unpickler
        if warn:
            log.warning("data: the decoded copy %s does not load (%s): decoding again", entry, exc)
        return None
    if not whole:
        if warn:
            log.warning("data: the decoded copy %s is not a whole copy of its split: decoding again", entry)
        return None
    log.info("data: %s read from its decoded copy %s", split_dir, entry)
    return images


def _store(entry: Path, images: torch.Tensor) -> None:
    """Writes ``images`` as ``entry`` through a temporary file (the caller holds the entry's lock, so
    temporary files of the entry left by a killed worker are removed first); a write that fails is
    a warning and leaves nothing behind."""
    for stale in entry.parent.glob(f"{entry.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    temporary = None
    try:
        handle, name = tempfile.mkstemp(dir=entry.parent, prefix=f"{entry.name}.", suffix=".tmp")
        temporary = Path(name)
        with os.fdopen(handle, "wb") as file:
            torch.save({"format": FORMAT, "images": images}, file)
        os.replace(temporary, entry)
        log.info("data: decoded copy kept at %s", entry)
    except OSError as exc:
        log.warning("data: the decoded copy %s could not be written (%s): it is decoded again next time", entry, exc)
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def _lock(lock_file: Path) -> IO[str]:
    """``lock_file`` (created if needed) opened and locked exclusively; closing it unlocks."""
    handle = open(lock_file, "a")  # noqa: SIM115 (the caller closes it)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
    except OSError:
        handle.close()
        raise
    return handle
