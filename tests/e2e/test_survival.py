"""Runs that survive, through the command line as a user meets it: a worker killed with SIGKILL, then
``resume=<run dir>``, ends bitwise where an uninterrupted run ends; SIGTERM to the launcher leaves no
process behind; a non-finite loss stops the run naming the step, the rank and the checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resist.checkpoints import CheckpointStore
from resist.run_dir import RunDir
from tests.conftest import REPO, run_cli, run_main_in_process

pytestmark = pytest.mark.slow

# 2 workers, 36 steps per worker: ResIST and local SGD in 4 rounds of 10 steps (the last 6), DDP in 36.
BASE = ("train.epochs=3", "train.eval_every=1", "checkpoint.every_rounds=1", "launcher.threads_per_worker=1")
# Through processes: ResIST with a warm-up the kill falls after, and DDP (per-rank buffers). Every
# protocol, with a warm-up that spans the stop, is resumed bit for bit on thread workers too
# (tests/sim/test_resume.py).
CASES = {
    "resist_warmup_before_the_kill": ("protocol=resist", "protocol.warmup_epochs=1", "protocol.optimizer_state=keep"),
    "ddp": ("protocol=ddp", "checkpoint.every_rounds=6"),
}


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "resist.run", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in map(int, (task / "children").read_text().split()):
            found += [child, *_descendants(child)]
    return found


def _workers(pid: int) -> list[int]:
    """Worker processes under the launcher ``pid``: spawned by it, or by torchrun (``resist.worker``)."""
    found = []
    for process in _descendants(pid):
        cmdline = Path(f"/proc/{process}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in cmdline or (b"-m resist.worker" in cmdline and b"torch.distributed.run" not in cmdline):
            found.append(process)
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    keep = ("step", "epoch", "samples", "lr", "train/loss", "train/acc1", "test/acc1", "test/loss")
    return [
        {k: r[k] for k in keep if k in r} | {"event": r["event"], "bytes": r.get("comm/cum_wire_bytes")}
        for r in map(json.loads, lines)
        if r["event"] in ("train", "eval", "summary")
    ]


def _tensors_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))


@pytest.mark.parametrize("case", list(CASES))
def test_a_killed_worker_then_resume_ends_bitwise_equal_to_an_uninterrupted_run(case, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = run_cli(*BASE, *CASES[case], f"hydra.run.dir={whole}")
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]

    launcher = _start(*BASE, *CASES[case], f"hydra.run.dir={killed}")
    store = CheckpointStore(RunDir(killed))
    _wait_for(lambda: len(store.committed()) >= 2)
    os.kill(_workers(launcher.pid)[1], signal.SIGKILL)  # worker 1
    _, stderr = launcher.communicate(timeout=60)
    assert launcher.returncode == 1
    last = next(line for line in stderr.splitlines() if line.startswith("resist: error:"))
    assert "worker 1 failed" in last and f"python -m resist.run resume={killed}" in last, last

    resumed = run_cli(f"resume={killed}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _records(killed) == _records(whole)
    final = torch.load(whole / "final_model.pt", weights_only=True)["state_dict"]
    assert _tensors_equal(final, torch.load(killed / "final_model.pt", weights_only=True)["state_dict"])
    for rank in (0, 1):  # the optimizer state at the end, too
        a = store.newest().load_shard(rank, torch.device("cpu"))
        b = CheckpointStore(RunDir(whole)).newest().load_shard(rank, torch.device("cpu"))
        assert a["step"] == b["step"] == 36
        assert _tensors_equal(a["optimizer"]["state"].get(0, {}), b["optimizer"]["state"].get(0, {}))
        assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
        for key, state in a["optimizer"]["state"].items():
            assert _tensors_equal(state, b["optimizer"]["state"][key])


@pytest.mark.parametrize("launcher_name", ["local", "torchrun"])
def test_sigterm_to_the_launcher_stops_every_worker(launcher_name, tmp_path, monkeypatch):
    """... and while the run trains, its rank 0 holds the run directory's lock: a second resume is
    refused in one line, and the running run's metrics are left alone."""
    run_dir = tmp_path / "run"
    launcher = _start("train.epochs=50", f"launcher={launcher_name}", f"hydra.run.dir={run_dir}")
    _wait_for(lambda: (run_dir / "metrics.jsonl").exists())
    processes = _descendants(launcher.pid)
    assert len(_workers(launcher.pid)) == 2
    status, _, stderr = run_main_in_process([f"resume={run_dir}", "train.epochs=60"], monkeypatch)
    assert status == 2 and stderr.startswith(f"resist: error: resume: {run_dir} is in use by a running process (pid ")
    assert not list(run_dir.glob("metrics.after-step-*"))  # nothing was cut
    launcher.send_signal(signal.SIGTERM)  # the workers stop at the next round end, after a checkpoint
    _, stderr = launcher.communicate(timeout=60)
    assert launcher.returncode == 128 + signal.SIGTERM
    newest = CheckpointStore(RunDir(run_dir)).newest()
    last = [line for line in stderr.splitlines() if line.startswith("resist: ")][-1]
    assert last.startswith("resist: stopped by SIGTERM: the 2 workers stopped at a round end; "), stderr[-2000:]
    assert last.endswith(f"the newest checkpoint is step {newest.step} ({newest.directory}); continue with: "
                         f"python -m resist.run resume={run_dir}")  # fmt: skip
    assert json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["event"] != "summary"
    _wait_for(lambda: not any(_alive(pid) for pid in processes), timeout=10)


def test_a_second_signal_stops_every_worker_at_once(tmp_path):
    run_dir = tmp_path / "run"
    launcher = _start("train.epochs=50", "launcher.threads_per_worker=1", f"hydra.run.dir={run_dir}")
    _wait_for(lambda: (run_dir / "metrics.jsonl").exists() and len(_workers(launcher.pid)) == 2)
    processes = _descendants(launcher.pid)
    for worker in _workers(launcher.pid):  # workers that cannot reach a round end any more
        os.kill(worker, signal.SIGSTOP)
    launcher.send_signal(signal.SIGINT)
    time.sleep(1.0)
    assert launcher.poll() is None  # the first only asks for a stop at the next round end
    launcher.send_signal(signal.SIGINT)
    _, stderr = launcher.communicate(timeout=30)
    assert launcher.returncode == 128 + signal.SIGINT
    said = [line for line in stderr.splitlines() if line.startswith("resist: ")]  # (after it: torch's tracker)
    assert said[-1].startswith("resist: stopped by SIGINT: all 2 workers stopped at once; "), stderr[-2000:]
    _wait_for(lambda: not any(_alive(pid) for pid in processes), timeout=10)


def test_ctrl_c_stops_the_default_run_and_its_resume_ends_bitwise_equal(tmp_path):
    """Ctrl-C (SIGINT to the terminal's process group: the launcher and its workers) after 40 % of
    the default run's steps: the run stops at the next round end after a checkpoint, says how to
    continue, and ``resume=<run dir>`` ends with the uninterrupted run's final weights."""
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    uninterrupted = run_cli("launcher.threads_per_worker=1", f"hydra.run.dir={whole}")
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    total = json.loads((whole / "metrics.jsonl").read_text().splitlines()[0])["total_steps"]

    def step() -> int:  # (the last line may be half written)
        metrics = interrupted / "metrics.jsonl"
        lines = metrics.read_text().splitlines()[:-1] if metrics.exists() else []
        return max((json.loads(line)["step"] for line in lines), default=0)

    launcher = _start("launcher.threads_per_worker=1", f"hydra.run.dir={interrupted}")
    _wait_for(lambda: step() >= 0.4 * total)
    os.killpg(launcher.pid, signal.SIGINT)  # as a terminal's Ctrl-C
    _, stderr = launcher.communicate(timeout=60)
    assert launcher.returncode == 128 + signal.SIGINT, stderr[-2000:]
    said = [line for line in stderr.splitlines() if line.startswith("resist: ")]
    assert said[-1].startswith("resist: stopped by SIGINT: the 2 workers stopped at a round end; "), stderr[-2000:]
    assert said[-1].endswith(f"continue with: python -m resist.run resume={interrupted}")
    stopped = CheckpointStore(RunDir(interrupted)).newest().step
    assert 0.4 * total <= stopped < total

    resumed = run_cli(f"resume={interrupted}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed at step {stopped} of {total}" in resumed.stderr
    assert _records(interrupted) == _records(whole)
    final = torch.load(whole / "final_model.pt", weights_only=True)["state_dict"]
    assert _tensors_equal(final, torch.load(interrupted / "final_model.pt", weights_only=True)["state_dict"])


def test_torchrun_resumes_a_run(tmp_path):
    """The torchrun launcher continues a run from its checkpoint (``resist.worker --resume``)."""
    run_dir = tmp_path / "run"
    first = run_cli("launcher=torchrun", "train.epochs=1", f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-2000:]
    resumed = run_cli(f"resume={run_dir}", "train.epochs=2")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    events = [json.loads(line)["event"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert events.count("resume") == 1 and events[-1] == "summary"
    assert json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 24


def test_a_non_finite_loss_stops_the_run_naming_step_rank_and_checkpoint(tmp_path):
    result = run_cli("optim.lr=1000", "train.epochs=4", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 1
    last = next(line for line in result.stderr.splitlines() if line.startswith("resist: error:"))
    assert "the loss became nan at step" in last and "on rank" in last, last
    assert "no checkpoint was saved" in last or "the last good checkpoint is" in last, last
    assert not (tmp_path / "run" / "final_model.pt").exists()
