"""The SLURM path on a real single-node cluster (slurmctld + slurmd, started by .ci/run through
tests/slurm/local_slurm.sh): a 2-task job of the worker entry, a Hydra multirun through the submitit
launcher, and the sbatch plan of every experiment. Skipped when no cluster answers, unless
RESIST_REQUIRE_SLURM=1 (set by .ci/run)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resist.checkpoints import CheckpointStore
from resist.run_dir import RunDir
from tests.conftest import REPO, run_cli, run_main_in_process

pytestmark = pytest.mark.slurm
SHIM = Path(__file__).parent / "bin"  # sacct for a cluster without slurmdbd (submitit polls it)
ENV = {"PATH": f"{SHIM}{os.pathsep}{os.environ['PATH']}", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def _cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0


@pytest.fixture(scope="module", autouse=True)
def cluster():
    if not _cluster_answers():
        if os.environ.get("RESIST_REQUIRE_SLURM") == "1":
            pytest.fail("no SLURM cluster answers (sinfo); .ci/run starts one with tests/slurm/local_slurm.sh")
        pytest.skip("no SLURM cluster (start one: bash tests/slurm/local_slurm.sh start)")


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "final_model.pt", weights_only=True)["state_dict"]


def test_two_task_job_matches_the_local_launcher(tmp_path):
    """ResIST on 2 workers, a few rounds: the SLURM job (one task per worker, gloo on CPU, position
    from SLURM's environment) ends with the same final weights as the local launcher, on any core
    count: both pin the workers' threads (CPU float sums depend on the thread count)."""
    common = ["protocol=resist", "num_workers=2", "train.epochs=2", "seed=3", "launcher.threads_per_worker=1"]
    local = run_cli(*common, f"hydra.run.dir={tmp_path}/local", env=ENV)
    assert local.returncode == 0, local.stderr[-3000:]
    slurm = run_cli(
        *common,
        "launcher=slurm",
        "launcher.wait=true",
        "launcher.partition=debug",
        f"hydra.run.dir={tmp_path}/slurm",
        env=ENV,
        timeout=600,
    )
    assert slurm.returncode == 0, slurm.stderr[-3000:]
    assert "submitted SLURM job" in slurm.stdout and "(1 node(s) x 2 task(s))" in slurm.stdout
    assert len(list((tmp_path / "slurm" / "slurm").glob("*/*_1_log.err"))) == 1  # a second task ran
    mine, theirs = _weights(tmp_path / "local"), _weights(tmp_path / "slurm")
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_hydra_multirun_through_the_submitit_launcher(tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    from wandb_records import read_offline_run

    result = run_cli(
        "-m",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=debug",
        "hydra.launcher.mem_gb=2",
        "hydra.launcher.timeout_min=5",
        "hydra.launcher.cpus_per_task=2",
        f"hydra.sweep.dir={tmp_path}",
        "logger=wandb",
        "train.epochs=1",
        "seed=0,1",
        env=ENV,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job, seed in ((0, 0), (1, 1)):
        run_dir = tmp_path / str(job)
        records = [__import__("json").loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert records[-1]["event"] == "summary" and records[0]["protocol"] == "resist"
        (log_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
        logged = read_offline_run(log_file)
        assert re.fullmatch(rf"default-resist-S2-seed{seed}-\d+_{job}", logged["run"].display_name)  # array ids
        assert logged["history"][-1]["test/acc1"] == records[-1]["test/acc1"]


EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


GPU_EXPERIMENTS = ("imagenet_", "cifar10_resist", "cifar10_local_sgd", "cifar10_ddp", "cifar100_")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_has_a_valid_sbatch_plan(experiment, tmp_path, monkeypatch):
    """The dry run prints submitit's parameters and the sbatch script; sbatch --test-only accepts the
    script (GPU requests aside: this test node has no GPUs, so that one line is checked, then dropped;
    and a plan asking for more tasks than this 2-core node has may only be refused for that)."""
    gpus = ["launcher.gpus_per_node=4"] if experiment.startswith(GPU_EXPERIMENTS) else []
    args = [f"+experiment={experiment}", "launcher=slurm", "dry_run=true", *gpus, f"hydra.run.dir={tmp_path}"]
    status, stdout, stderr = run_main_in_process(args, monkeypatch)  # (the dry run starts no worker)
    assert status == 0, stderr[-2000:]
    assert "sbatch plan (submitit parameters): " in stdout
    assert "#SBATCH --ntasks-per-node=" in stdout and f"#SBATCH --job-name={experiment}" in stdout
    script = stdout[stdout.index("#!/bin/bash") : stdout.index("<worker entry>")] + "true\n"
    if gpus:
        assert "#SBATCH --gpus-per-node=4\n" in script
        script = script.replace("#SBATCH --gpus-per-node=4\n", "")
    sbatch = subprocess.run(["sbatch", "--test-only"], input=script, text=True, capture_output=True, timeout=30)
    assert sbatch.returncode == 0 or "Requested node configuration is not available" in sbatch.stderr, sbatch.stderr


def _job_field(job_id: str, field: str) -> str:
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30).stdout
    match = re.search(rf"\b{field}=(\S+)", shown)
    return match.group(1) if match else ""


def test_a_signalled_job_checkpoints_is_requeued_and_ends_as_an_uninterrupted_run(tmp_path):
    """SIGUSR2 (what SLURM sends before a time limit or on preemption) mid-run: the workers stop at the
    next round end after a checkpoint, submitit requeues the job, the requeued job resumes by itself
    and ends with the final weights of an uninterrupted local run, in one W&B run."""
    common = ["train.epochs=8", "seed=3", "launcher.threads_per_worker=1", "checkpoint.every_rounds=1"]
    local = run_cli(*common, f"hydra.run.dir={tmp_path}/local", env=ENV)
    assert local.returncode == 0, local.stderr[-3000:]
    run_dir = tmp_path / "slurm"
    submitted = run_cli(
        *common, "launcher=slurm", "launcher.partition=debug", "logger=wandb", f"hydra.run.dir={run_dir}", env=ENV
    )
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    job_id = re.search(r"submitted SLURM job (\d+)", submitted.stdout).group(1)
    store = CheckpointStore(RunDir(run_dir))
    deadline = time.monotonic() + 300
    while not store.committed():
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=30)
    while not (_job_field(job_id, "Restarts") == "1" and _job_field(job_id, "JobState") == "PENDING"):
        assert time.monotonic() < deadline + 60, "the job was not requeued"
        time.sleep(0.5)
    # SLURM makes a requeued job eligible two minutes later; make it eligible now and schedule it.
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], check=True, timeout=30)
    subprocess.run(["scontrol", "release", job_id], check=True, timeout=30)

    metrics = run_dir / "metrics.jsonl"
    while '"event": "summary"' not in metrics.read_text():
        assert time.monotonic() < deadline + 300, "the requeued job did not finish within 300 s"
        time.sleep(1)
    assert _job_field(job_id, "Restarts") == "1"
    events = [json.loads(line)["event"] for line in metrics.read_text().splitlines()]
    assert events.count("resume") == 1 and events.count("summary") == 1
    mine, theirs = _weights(tmp_path / "local"), _weights(run_dir)
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    offline_runs = sorted(run_dir.glob("wandb/offline-run-*"))
    assert len(offline_runs) == 2 and all(d.name.endswith(f"-{run_id}") for d in offline_runs)
