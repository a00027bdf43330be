"""Shared fixtures: the repository layout, the shared real datasets, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

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
def cifar10_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared CIFAR-10 JPEG tarball extracted into a temporary directory (train/ and test/)."""
    return _extract("cifar10-jpg.tar.gz", tmp_path_factory.mktemp("cifar10"))


@pytest.fixture(scope="session")
def imagenette_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared 10-image Imagenette sample (train/ and val/)."""
    return _extract("imagenette-sample-10.tar.gz", tmp_path_factory.mktemp("imagenette")) / "imagenette-sample-10"
