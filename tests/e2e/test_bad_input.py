"""The bad-input catalogue: each case is a command a user may type, answered by one line naming the
key, the problem and the fix, exit status 2, before any worker starts, with nothing in any run
directory created or changed. The README lists the same cases."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from resist.checkpoints import CheckpointStore
from resist.run_dir import RunDir
from tests.conftest import run_cli, run_main_in_process, write_image_folder

pytestmark = pytest.mark.slow

Setup = Callable[[Path, Path], list[str]]  # (scratch dir, a finished run to copy) -> command-line arguments


def _args(*overrides: str) -> Setup:
    return lambda scratch, finished: list(overrides)


def _copy(finished: Path, scratch: Path) -> Path:
    run = scratch / "copied-run"
    shutil.copytree(finished, run)
    return run


def _no_checkpoint(scratch: Path, finished: Path) -> list[str]:
    run = _copy(finished, scratch)
    shutil.rmtree(run / "checkpoints")
    return [f"resume={run}"]


def _corrupt_shard(scratch: Path, finished: Path) -> list[str]:
    run = _copy(finished, scratch)
    shard = CheckpointStore(RunDir(run)).newest().shard_path(1)
    shard.write_bytes(shard.read_bytes()[:-100])
    return [f"resume={run}", "train.epochs=4"]


def _unreadable_manifest(scratch: Path, finished: Path) -> list[str]:
    run = _copy(finished, scratch)
    (CheckpointStore(RunDir(run)).newest().directory / "manifest.json").write_text('{"step": 2')
    return [f"resume={run}", "train.epochs=4"]


def _foreign_checkpoint(scratch: Path, finished: Path) -> list[str]:
    run = _copy(finished, scratch)
    config = run / "resolved_config.yaml"
    config.write_text(config.read_text().replace("seed: 0", "seed: 5"))
    return [f"resume={run}", "train.epochs=4"]


def _complete(scratch: Path, finished: Path) -> list[str]:
    return [f"resume={_copy(finished, scratch)}"]


def _trajectory_change(scratch: Path, finished: Path) -> list[str]:
    return [f"resume={_copy(finished, scratch)}", "optim.lr=0.5"]


def _not_a_run(scratch: Path, finished: Path) -> list[str]:
    (scratch / "notes").mkdir()
    return [f"resume={scratch / 'notes'}"]


def _folder(splits: dict[str, int], mutate: Callable[[Path], None] = lambda root: None) -> Setup:
    def setup(scratch: Path, finished: Path) -> list[str]:
        root = write_image_folder(scratch / "images", splits, ["a", "b"])
        mutate(root)
        return ["dataset=imagefolder", f"dataset.root={root}", "dataset.image_size=16"]

    return setup


def _drop_class(root: Path) -> None:
    shutil.rmtree(root / "val" / "b")


def _corrupt_image(root: Path) -> None:
    next((root / "train" / "a").iterdir()).write_bytes(b"this is not an image")


CATALOGUE: list[tuple[str, Setup, str]] = [
    ("unknown key", _args("foo=1"), "foo: "),
    ("wrong type", _args("optim.lr=abc"), "optim.lr: "),
    ("key added to the typed config", _args("+model.foo=1"), "model.foo: is not a config key"),
    ("unknown group option", _args("model=nope"), "model=nope: no such option in config group 'model'"),
    ("unknown experiment", _args("+experiment=nope"), "experiment=nope: no such option"),
    ("unknown architecture", _args("model.arch=resnet9"), "model.arch: unknown architecture 'resnet9'"),
    ("negative learning rate", _args("optim.lr=-1"), "optim.lr: must be a positive number"),
    ("momentum above 1", _args("optim.momentum=1.5"), "optim.momentum: "),
    ("unknown dataset", _args("dataset.name=foo"), "dataset.name: Invalid value 'foo'"),
    ("old boolean augment", _args("dataset.augment=true"), "dataset.augment: "),
    ("protocol none with workers", _args("protocol=none"), "num_workers: protocol=none trains one worker"),
    ("too few blocks per worker", _args("num_workers=8"), "protocol.decomposition.min_depth: 8 workers share 4"),
    ("another protocol's key", _args("protocol=ddp", "protocol.local_steps=5"), "protocol.local_steps: protocol=ddp"),
    ("a compression DDP lacks", _args("protocol=ddp", "protocol.compress=int8"), "protocol.compress: Invalid value"),
    ("PowerSGD from step 1", _args("protocol=ddp", "protocol.powersgd_start_step=1"), "protocol.powersgd_start_step: "),
    ("milestones out of order", _args("optim.milestones=[0.8,0.5]"), "optim.milestones: "),
    ("zero batch size", _args("train.batch_size=0"), "train.batch_size: "),
    ("image too small for the model", _args("model=imagenet_preact_resnet50"), "dataset.image_size: 16px is too small"),
    ("no checkpoint kept", _args("checkpoint.keep=0"), "checkpoint.keep: must be >= 1"),
    ("W&B online without a login", _args("logger=wandb", "logger.wandb_mode=online"), "logger.wandb_mode: W&B online"),
    ("image folder without a root", _args("dataset=imagefolder"), "dataset.root: dataset imagefolder needs a root"),
    ("missing CIFAR", _args("dataset=cifar10", "dataset.root=/nonexistent/c"), "dataset.root: no cifar10 data at"),
    ("missing ImageNet", _args("dataset=imagenet", "dataset.root=/nonexistent/i"), "dataset.root: no imagenet data"),
    ("image folder without images", _folder({"train": 0, "val": 1}), "dataset.root: "),
    ("class missing from a split", _folder({"train": 2, "val": 1}, _drop_class), "dataset.root: "),
    ("corrupt image", _folder({"train": 2, "val": 1}, _corrupt_image), "dataset.root: "),
    ("resume of a directory that is not a run", _not_a_run, "resume: "),
    ("resume of a missing directory", _args("resume=/nonexistent/run"), "resume: /nonexistent/run is not a run"),
    ("resume of a run without checkpoint", _no_checkpoint, "resume: "),
    ("resume of a corrupt checkpoint", _corrupt_shard, "resume: checkpoint shard "),
    ("resume of an unreadable manifest", _unreadable_manifest, "resume: checkpoint manifest "),
    ("resume of a foreign checkpoint", _foreign_checkpoint, "resume: checkpoint "),
    ("resume of a finished run", _complete, "resume: the run is complete"),
    ("resume changing the trajectory", _trajectory_change, "optim.lr: 'optim.lr=0.5' would change the trajectory"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch default run, its checkpoint at the end."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    result = run_cli("train.epochs=2", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir


def _files(root: Path) -> dict[str, bytes | None]:
    """Every file and folder under ``root`` (a folder as None), Hydra's record of a command and its
    log included: a refused command leaves none of them."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def _check(setup: Setup, expected: str, scratch: Path, finished: Path, run) -> None:
    args = setup(scratch, finished)
    before = _files(scratch)
    resuming = any(a.startswith("resume=") for a in args)
    status, stderr = run([*args, *([] if resuming else [f"hydra.run.dir={scratch}/new-run"])])
    assert status == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"resist: error: {expected}") and "(fix: " in lines[0], lines[0]
    assert not (scratch / "new-run").exists()
    assert _files(scratch) == before  # nothing written or changed, not even Hydra's record or log


@pytest.fixture
def no_wandb_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)


@pytest.mark.parametrize(("setup", "expected"), [c[1:] for c in CATALOGUE], ids=[c[0] for c in CATALOGUE])
def test_bad_input_is_one_line_naming_the_key_and_fix(
    setup, expected, tmp_path, finished_run, no_wandb_login, monkeypatch
):
    _check(setup, expected, tmp_path, finished_run, lambda args: run_main_in_process(args, monkeypatch)[::2])


THROUGH_A_NEW_INTERPRETER = (
    "unknown key",
    "corrupt image",
    "resume of a corrupt checkpoint",
    "W&B online without a login",
)


@pytest.mark.parametrize("name", THROUGH_A_NEW_INTERPRETER)
@pytest.mark.usefixtures("no_wandb_login")
def test_bad_input_through_a_new_interpreter(name, tmp_path, finished_run):
    _, setup, expected = next(c for c in CATALOGUE if c[0] == name)

    def run(args: list[str]) -> tuple[int, str]:
        result = run_cli(*args)
        return result.returncode, result.stderr

    _check(setup, expected, tmp_path, finished_run, run)


def test_the_catalogue_has_at_least_25_cases_and_the_readme_lists_them():
    """docs/checkpoints.md (linked from the README) lists every case under its count."""
    listing = (Path(__file__).resolve().parents[2] / "docs" / "checkpoints.md").read_text(encoding="utf-8")
    assert len(CATALOGUE) >= 25
    missing = [name for name, _, _ in CATALOGUE if f"| {name} |" not in listing]
    assert missing == [], missing
    assert f"Bad input ({len(CATALOGUE)} cases" in listing
