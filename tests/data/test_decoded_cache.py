"""Decoded copies of CIFAR class folders (``dataset.cache_dir``): a split is decoded once, read from
its copy after that, decoded again when an image changes or the copy is damaged, and decoded once
when workers load it at the same time."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
from pathlib import Path

import pytest
import torch

from resist.config import DatasetConfig, DatasetName
from resist.data import cifar, decoded_cache, imagefiles, sources
from resist.data.sources import DatasetError, check_available
from tests.conftest import pixels


def _cfg(root, cache_dir) -> DatasetConfig:
    return DatasetConfig(
        name=DatasetName.cifar10, root=str(root), cache_dir=None if cache_dir is None else str(cache_dir)
    )


def _listed_splits(root: Path) -> list[tuple[Path, list[tuple[str, int]]]]:
    """``(split dir, samples)`` of the folder's train and test splits, as the reader lists them."""
    return [(split.dir, samples) for split, samples in (cifar._list_folder(root / name) for name in ("train", "test"))]


def _splits(data: sources.DataSplits) -> tuple[torch.Tensor, ...]:
    return data.train.base.images, data.train.base.labels, data.test.images, data.test.labels


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths decoded from now on, in the order their decoding started (any thread)."""
    seen: list[str] = []
    decode = imagefiles.load_image

    def counting(path: str):
        seen.append(path)
        return decode(path)

    monkeypatch.setattr(imagefiles, "load_image", counting)
    return seen


def test_a_split_is_decoded_once_then_read_from_its_copy(tiny_cifar10_folder, tmp_path, decodes):
    cache = tmp_path / "cache"
    uncached = _splits(sources.load(_cfg(tiny_cifar10_folder, None), seed=0))
    assert len(decodes) == 30 and not cache.exists()  # no cache_dir: decoded, nothing kept
    first = _splits(sources.load(_cfg(tiny_cifar10_folder, cache), seed=0))
    assert len(decodes) == 60 and sorted(p.name.split("-")[:2] for p in cache.glob("*.pt")) == [
        ["test", "10"],
        ["train", "20"],
    ]
    again = _splits(sources.load(_cfg(tiny_cifar10_folder, cache), seed=0))
    assert len(decodes) == 60  # read from the copies
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(uncached, first, again, strict=True))


def test_a_changed_image_is_decoded_again(tiny_cifar10_folder, tmp_path, decodes):
    cache = tmp_path / "cache"
    before = sources.load(_cfg(tiny_cifar10_folder, cache), seed=0)
    changed = tiny_cifar10_folder / "test" / "ship" / "0.png"
    from PIL import Image

    Image.fromarray(pixels(32, 123)).save(changed)
    os.utime(changed, ns=(1, 1))  # a copy is named by sizes and times: even an old time names a new one
    after = sources.load(_cfg(tiny_cifar10_folder, cache), seed=0)
    assert len(decodes) == 30 + 10  # the test split again, the training split from its copy
    index = after.test.labels.tolist().index(8)  # ship
    assert torch.equal(after.test.images[index], torch.from_numpy(pixels(32, 123)).permute(2, 0, 1))
    assert not torch.equal(before.test.images[index], after.test.images[index])
    assert torch.equal(before.train.base.images, after.train.base.images)


def test_a_damaged_copy_is_decoded_again_and_replaced(tiny_cifar10_folder, tmp_path, decodes, caplog):
    cache = tmp_path / "cache"
    expected = _splits(sources.load(_cfg(tiny_cifar10_folder, cache), seed=0))
    (test_copy,) = cache.glob("test-*.pt")
    test_copy.write_bytes(test_copy.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="resist.data.decoded_cache"):
        again = _splits(sources.load(_cfg(tiny_cifar10_folder, cache), seed=0))
    assert len(decodes) == 30 + 10
    assert caplog.text.count(f"the decoded copy {test_copy} does not load") == 1  # one warning, not one per read
    assert all(torch.equal(a, b) for a, b in zip(expected, again, strict=True))
    sources.load(_cfg(tiny_cifar10_folder, cache), seed=0)
    assert len(decodes) == 40  # the replaced copy is whole


def test_workers_loading_at_once_decode_a_split_once(tiny_cifar10_folder, tmp_path, decodes):
    cache, results, start = tmp_path / "cache", [None, None], threading.Barrier(2)

    def worker(rank: int) -> None:
        start.wait()
        results[rank] = _splits(sources.load(_cfg(tiny_cifar10_folder, cache), seed=0))

    threads = [threading.Thread(target=worker, args=(rank,)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(decodes) == 30 and len(set(decodes)) == 30
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


def test_a_cache_dir_that_cannot_be_made_is_one_line_before_training(tiny_cifar10_folder, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(DatasetError) as info:
        check_available(_cfg(tiny_cifar10_folder, blocker / "cache"))
    assert str(info.value) == (
        f"dataset.cache_dir: cannot create {blocker / 'cache'}: {blocker} is not a directory (fix: set "
        "dataset.cache_dir to a writable directory, or dataset.cache_dir=null to decode every run)"
    )
    assert not (blocker.parent / "fresh").exists()
    check_available(_cfg(tiny_cifar10_folder, blocker.parent / "fresh" / "cache"))  # fine, and creates nothing
    assert not (blocker.parent / "fresh").exists()
    with pytest.raises(DatasetError, match=r"^dataset.cache_dir: the directory name is empty \(fix: "):
        check_available(DatasetConfig(name=DatasetName.cifar10, root=str(tiny_cifar10_folder), cache_dir=" "))


def test_a_copy_holds_the_listing_order_so_the_reading_order_may_change(tiny_cifar10_folder, tmp_path, monkeypatch):
    """Images and labels stay paired when the order a split is read in changes after its copy was made."""
    cache = tmp_path / "cache"
    sources.load(_cfg(tiny_cifar10_folder, cache), seed=0)
    monkeypatch.setattr(cifar, "mixed_order", lambda n: torch.arange(n).flip(0))
    cached, fresh = (_splits(sources.load(_cfg(tiny_cifar10_folder, where), seed=0)) for where in (cache, None))
    assert all(torch.equal(a, b) for a, b in zip(cached, fresh, strict=True))


def test_a_cache_that_cannot_be_used_is_skipped_with_a_warning(tiny_cifar10_folder, tmp_path, monkeypatch, caplog):
    cache = tmp_path / "cache"
    expected = _splits(sources.load(_cfg(tiny_cifar10_folder, None), seed=0))

    def no_locks(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, logger="resist.data.decoded_cache"):
        patch.setattr(fcntl, "flock", no_locks)  # NFS mounted with nolock
        assert all(
            torch.equal(a, b)
            for a, b in zip(expected, _splits(sources.load(_cfg(tiny_cifar10_folder, cache), seed=0)), strict=True)
        )
    assert f"decoded copies cannot be kept in {cache} ([Errno {errno.ENOLCK}] No locks available)" in caplog.text
    assert not list(cache.glob("*.pt"))

    (train_split,) = [s for s in _listed_splits(tiny_cifar10_folder) if s[0].name == "train"]
    stale = decoded_cache.entry_path(cache, *train_split).with_suffix(".pt.12345.tmp")
    stale.write_bytes(b"left by a killed worker")

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    caplog.clear()
    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, logger="resist.data.decoded_cache"):
        patch.setattr(torch, "save", full_disk)
        assert all(
            torch.equal(a, b)
            for a, b in zip(expected, _splits(sources.load(_cfg(tiny_cifar10_folder, cache), seed=0)), strict=True)
        )
    assert caplog.text.count("could not be written ([Errno 28] No space left on device)") == 2
    assert sorted(p.suffix for p in cache.iterdir()) == [".lock", ".lock"]  # no entry, no temporary file
