"""Shared fixtures: the repository layout, the shared real datasets (skipped with the reason when
``../shared/data`` is absent, unless RESIST_REQUIRE_DATA=1), tiny generated datasets every run has,
and a CLI runner."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# The project's real offline datasets sit beside the checkout (override with RESIST_SHARED_DATA).
SHARED_DATA = Path(os.environ.get("RESIST_SHARED_DATA", REPO.parent / "shared" / "data"))


def run_cli(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 300):
    """Run ``python -m resist.run ARGS`` as a user would; return the CompletedProcess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", "resist.run", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_main_in_process(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """``python -m resist.run ARGS``'s entry called in this process (the same code as the command
    line, without an interpreter's start-up): its exit status, stdout and stderr. For commands that
    end before any worker starts (bad input, dry runs)."""
    from hydra.core.global_hydra import GlobalHydra

    from resist.run import main

    GlobalHydra.instance().clear()
    monkeypatch.setattr(sys, "argv", ["resist.run", *args])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            main()
        status = 0
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)  # (the entry sets it for its own run)
    return status, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="session", autouse=True)
def decoded_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """This session's ``dataset.cache_dir``: RESIST_CACHE_DIR, which conf/dataset/cifar*.yaml read
    and the CLI runs inherit, so decoded image folders never land in the user's cache."""
    path = tmp_path_factory.mktemp("decoded-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RESIST_CACHE_DIR", str(path))
        yield path


def _extract(archive: str, destination: Path) -> Path:
    path = SHARED_DATA / archive
    if not path.exists():
        message = f"{path} is missing: the shared datasets sit beside the checkout (../shared/data)"
        if os.environ.get("RESIST_REQUIRE_DATA") == "1":  # set by .ci/run
            pytest.fail(message)
        pytest.skip(message)
    with tarfile.open(path) as tar:
        tar.extractall(destination, filter="data")
    return destination


@pytest.fixture(scope="session")
def cifar10_folder(tmp_path_factory: pytest.TempPathFactory):
    """The shared CIFAR-10 JPEG tarball extracted into a temporary directory (train/ and test/): in
    memory (/dev/shm) where there is one, as creating its 60,000 files on a disk takes half a minute."""
    memory = Path("/dev/shm")
    if not (memory.is_dir() and os.access(memory, os.W_OK)):
        yield _extract("cifar10-jpg.tar.gz", tmp_path_factory.mktemp("cifar10"))
        return
    with tempfile.TemporaryDirectory(prefix="resist-test-cifar10-", dir=memory) as folder:
        yield _extract("cifar10-jpg.tar.gz", Path(folder))


@pytest.fixture(scope="session")
def imagenette_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared 10-image Imagenette sample (train/ and val/)."""
    return _extract("imagenette-sample-10.tar.gz", tmp_path_factory.mktemp("imagenette")) / "imagenette-sample-10"


# -- tiny generated datasets (no shared data needed) ---------------------------------------------

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def pixels(size: int, seed: int) -> np.ndarray:
    """A seeded random RGB image (size, size, 3) of uint8."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def write_image_folder(
    root: Path, splits: dict[str, int], classes: list[str], *, size: int = 12, extension: str = "png"
) -> Path:
    """Write ``root/<split>/<class>/<i>.<extension>``: ``splits[split]`` seeded random images of
    ``size`` px per class (PNG is lossless: the files decode to exactly :func:`pixels`)."""
    from PIL import Image

    for split_index, (split, per_class) in enumerate(splits.items()):
        for label, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                seed = (split_index * 1000 + label) * 1000 + i
                Image.fromarray(pixels(size, seed)).save(root / split / name / f"{i}.{extension}")
    return root


@pytest.fixture
def tiny_imagefolder(tmp_path: Path) -> Path:
    """An ImageFolder tree: train/ and val/, 3 classes (a, b, c) x 4 images of 12x12 px (PNG)."""
    return write_image_folder(tmp_path / "tiny", {"train": 4, "val": 4}, ["a", "b", "c"])


@pytest.fixture
def tiny_cifar10_folder(tmp_path: Path) -> Path:
    """CIFAR-10 as class folders: train/ (2 images per class) and test/ (1), 32x32 px PNG."""
    return write_image_folder(tmp_path / "cifar10", {"train": 2, "test": 1}, CIFAR10_CLASSES, size=32)


@pytest.fixture
def tiny_cifar10_pickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """torchvision's CIFAR-10 pickle layout (<root>/cifar-10-batches-py): 5 training batches of 2
    images and a test batch of 4, seeded. torchvision checks the real files' md5 sums; for these
    files it is patched to check that they exist."""
    import torchvision.datasets.cifar as tv_cifar

    folder = tmp_path / "cifar10-pickles" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = [(f"data_batch_{i}", 2) for i in range(1, 6)] + [("test_batch", 4)]
    for index, (name, count) in enumerate(batches):
        images = np.stack([pixels(32, 10_000 + 10 * index + i) for i in range(count)])
        entry = {
            "data": images.transpose(0, 3, 1, 2).reshape(count, -1),
            "labels": [(index + i) % 10 for i in range(count)],
        }
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CIFAR10_CLASSES}))
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    return folder.parent
