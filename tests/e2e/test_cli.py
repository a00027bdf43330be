"""The command line as a user runs it: the embedded default, experiments, W&B offline, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory):
    """``python -m resist.run`` with no arguments but the run directory."""
    run_dir = tmp_path_factory.mktemp("default") / "run"
    result = run_cli(f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def _shared_parameters(arch: str, num_classes: int, in_channels: int) -> int:
    """Parameters of everything but the partitioned blocks (the default stage's non-first blocks)."""
    from resist.models.preact import build_model, count_parameters
    from resist.models.spec import ARCHITECTURES

    spec = ARCHITECTURES[arch]
    model = build_model(spec, num_classes, in_channels=in_channels, device="meta")
    units = spec.layout.partitioned_units(None)
    partitioned = sum(count_parameters(model.block(*spec.layout.locate(u))) for u in units)
    return count_parameters(model) - partitioned


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_embedded_default_learns_digits(default_run):
    run_dir, result = default_run
    summary = _records(run_dir)[-1]
    assert summary["event"] == "summary" and summary["test/acc1"] >= 0.90
    assert f"final test accuracy: {summary['test/acc1']:.2%}" in result.stdout
    assert "local SGD would send" in result.stdout and "for the same 10 rounds" in result.stdout
    # The shared layers' traffic is exact (the hand-off's depends on the draws): the 2 workers' digests
    # of the weights they built from the seed, and one ring all-reduce per round on each of them.
    shared_bytes = 4 * _shared_parameters("preact_resnet_mini", num_classes=10, in_channels=1)
    assert summary["comm/cum_wire_bytes/init"] == 2 * 32
    assert summary["comm/cum_wire_bytes/train_sync"] == 10 * 2 * shared_bytes  # 2(S-1)/S = 1 at S = 2
    assert f"run directory: {run_dir}" in result.stdout


def test_run_directory_holds_config_and_complete_metrics(default_run):
    run_dir, _ = default_run
    resolved = yaml.safe_load((run_dir / "resolved_config.yaml").read_text())
    assert resolved["model"]["arch"] == "preact_resnet_mini" and resolved["dataset"]["name"] == "digits"
    records = _records(run_dir)
    start = records[0]
    assert start["event"] == "start" and start["total_steps"] == 8 * start["steps_per_epoch"] == 96
    assert (start["protocol"], start["num_workers"], start["steps_per_round"]) == ("resist", 2, 10)
    train = [r for r in records if r["event"] == "train"]
    evals = [r for r in records if r["event"] == "eval"]
    # every 2 epochs (24 steps), at the first round end (multiple of 10) at or after it, and at the end
    assert [r["step"] for r in evals] == [30, 50, 80, 96]
    assert train[-1]["step"] == start["total_steps"]
    for key in ("lr", "epoch", "samples", "train/loss", "train/acc1", "time/elapsed_s", "time/compute_s"):
        assert key in train[0]
    # the ledgers' seconds per purpose (mean over workers)
    last = train[-1]
    assert 0 < last["time/comm_s/train_sync"] + last["time/comm_s/handoff"] < last["time/elapsed_s"]
    # a run that can stop at a round end (Ctrl-C) agrees on it at every round end: one vote per round
    # and worker but the last (the run ends there, nothing to stop)
    rounds = -(-start["total_steps"] // start["steps_per_round"])
    assert last["comm/cum_ops/control"] == 2 * (rounds - 1) and last["comm/cum_ops/init"] > 0
    for key in ("test/loss", "test/acc1", "test/acc5", "time/eval_s"):
        assert key in evals[0]
    assert all(a["step"] < b["step"] for a, b in zip(train, train[1:], strict=False))


def test_final_model_is_an_ordinary_checkpoint(default_run):
    """The final global model (residual scales folded in) loads into the plain network and scores
    what the run's last evaluation scored."""
    from resist.config import DatasetConfig, DatasetName
    from resist.data import sources
    from resist.models.checkpoint import load_inference_model

    run_dir, _ = default_run
    model = load_inference_model(run_dir / "final_model.pt")
    assert all(block.residual_scale == 1.0 for stage in model.stages for block in stage.blocks)
    test = sources.load(DatasetConfig(name=DatasetName.digits, image_size=16), seed=0).test
    correct = 0
    with torch.no_grad():
        for first in range(0, len(test), 100):
            images, labels = test.images[first : first + 100], test.labels[first : first + 100]
            correct += (model(images).argmax(dim=1) == labels).sum().item()
    assert abs(correct / len(test) - _records(run_dir)[-1]["test/acc1"]) <= 1 / len(test)


def test_existing_run_directory_is_never_overwritten(default_run):
    run_dir, _ = default_run
    before = (run_dir / "metrics.jsonl").read_bytes()
    result = run_cli(f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"resist: error: hydra.run.dir: {run_dir} already holds a run (metrics.jsonl); refusing to overwrite it "
        "(fix: choose a new hydra.run.dir or move the old run away)"
    ]
    assert (run_dir / "metrics.jsonl").read_bytes() == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu_is_a_clean_error(tmp_path):
    result = run_cli("device=cuda", f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "resist: error: device: device=cuda but no CUDA GPU is visible "
        "(fix: use device=cpu or device=auto)"
    )


def test_cfg_job_and_help():
    job = run_cli("--cfg", "job", "+experiment=cifar10_single")
    assert job.returncode == 0
    composed = yaml.safe_load(job.stdout)
    assert composed["model"]["arch"] == "preact_resnet101" and composed["train"]["epochs"] == 160
    help_text = run_cli("--help")
    assert help_text.returncode == 0
    for group in ("model:", "dataset:", "protocol:", "optim:", "logger:", "launcher:"):
        assert group in help_text.stdout


def test_imagenet_path_end_to_end_on_real_jpegs(imagenette_folder, tmp_path):
    result = run_cli("+experiment=imagenette_sample", f"dataset.root={imagenette_folder}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = _records(tmp_path)[-1]
    assert summary["step"] == 2
    # The saved model scores exactly what the run reported (same weights, batches and code).
    from resist.comm.backends import run_in_threads
    from resist.config import DatasetConfig, DatasetName
    from resist.data import sources
    from resist.models.checkpoint import load_inference_model
    from resist.train.evaluate import evaluate

    model = load_inference_model(tmp_path / "final_model.pt")
    cfg = DatasetConfig(name=DatasetName.imagefolder, root=str(imagenette_folder), image_size=64)
    (again,) = run_in_threads(1, lambda comm: evaluate(model, sources.load(cfg, seed=0).test, batch_size=5, comm=comm))
    assert again == {key: summary[key] for key in again}


def test_cifar10_experiment_reads_the_shared_copy(cifar10_folder, decoded_cache_dir, tmp_path):
    """... decoded once into dataset.cache_dir (RESIST_CACHE_DIR here): the data tests' copies, or its own."""
    result = run_cli(
        "+experiment=cifar10_cpu_single",
        f"dataset.root={cifar10_folder}",
        "train.max_steps=3",
        "train.eval_batch_size=1000",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(tmp_path)
    assert records[0]["data"].startswith("cifar10 (ImageFolder layout at")
    assert "50000 train / 10000 test" in records[0]["data"]
    assert records[-1]["step"] == 3 and records[-1]["samples"] == 3 * 128
    assert (
        len(list(decoded_cache_dir.glob("train-50000-*.pt")))
        == len(list(decoded_cache_dir.glob("test-10000-*.pt")))
        == 1
    )


def test_wandb_offline_run_files_hold_the_metrics(tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    from wandb_records import read_offline_run

    result = run_cli(
        "logger=wandb",
        "train.epochs=2",
        f"hydra.run.dir={tmp_path}",
        "name=wandbcheck",
        env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (log_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    logged = read_offline_run(log_file)
    run = logged["run"]
    assert (run.project, run.run_group, run.job_type, run.display_name) == (
        "resist",
        "wandbcheck",
        "resist",
        "wandbcheck-resist-S2-seed0",
    )
    assert logged["config"]["optim"]["lr"] == 0.05 and logged["config"]["model"]["arch"] == "preact_resnet_mini"
    assert run.run_id == (tmp_path / "wandb_run_id").read_text().strip()  # kept for a requeued job
    for axis in ("comm/cum_wire_bytes", "time/elapsed_s", "epoch"):  # x-axes to choose in W&B's panels
        assert logged["metrics"][axis] == ""
    assert logged["metrics"]["test/*"] == "step"
    # W&B's step is the optimizer step: the records of one step (train, eval, summary) are one row.
    rows: dict[int, dict] = {}
    for record in _records(tmp_path):
        if record["event"] in ("train", "eval", "summary"):
            rows.setdefault(record["step"], {}).update({k: v for k, v in record.items() if k != "event"})
    history = logged["history"]
    assert len(history) == len(rows)
    for mine, theirs in zip(rows.values(), history, strict=True):
        assert mine.items() <= theirs.items()


def test_a_python_without_the_packages_says_which_interpreter_to_use(tmp_path):
    """From the repository root a Python without the project's packages (here: the same interpreter
    without its site-packages) finds the ``resist`` folder; it stops in one line naming the fix."""
    result = subprocess.run(
        [sys.executable, "-S", "-m", "resist.run", f"hydra.run.dir={tmp_path}/run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("resist: error: this Python (")
    assert "source .venv/bin/activate" in result.stderr and not (tmp_path / "run").exists()
