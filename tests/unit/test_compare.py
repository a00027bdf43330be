"""``python -m resist.compare`` on small generated run directories: the table's figures, groups over
seeds, multirun expansion, the plots, and its refusals."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from resist.analysis.runs import load_run, run_dirs, table
from resist.run_dir import RunDir
from tests.conftest import REPO
from tests.generated_runs import write_run


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    sweep = tmp_path / "multirun"
    return {
        "resist0": write_run(sweep / "0", protocol="resist", seed=0, accuracies=[0.5, 0.91, 0.96], bytes_per_eval=10e6),
        "resist1": write_run(sweep / "1", protocol="resist", seed=1, accuracies=[0.6, 0.89, 0.94], bytes_per_eval=10e6),
        "local": write_run(
            tmp_path / "local", protocol="local_sgd", seed=0, accuracies=[0.7, 0.93], bytes_per_eval=20e6
        ),
        "sweep": sweep,
    }


def test_seeds_are_grouped_with_mean_and_std(runs):
    results = [load_run(p) for p in run_dirs([runs["sweep"], runs["local"]])]
    assert [r.path.path for r in results] == [runs["resist0"], runs["resist1"], runs["local"]]
    resist, local = table(results, [0.9, 0.95])
    mean, std = statistics.mean([0.96, 0.94]), statistics.stdev([0.96, 0.94])
    assert resist["seeds"] == "0,1" and resist["final acc"] == f"{100 * mean:.2f} % ± {100 * std:.2f} %"
    assert resist["bytes to train"] == "29.0 MB ± 0.0 MB" and resist["bytes per worker"] == "15.0 MB ± 0.0 MB"
    assert resist["to 90 %"] == "5.0 s ± 1.4 s, 25.0 MB ± 7.1 MB"  # epochs 2 and 3 of the two seeds
    assert resist["to 95 %"] == "not reached by 1 of 2"
    assert local["final acc"] == "93.00 %" and local["to 90 %"] == "4.0 s, 40.0 MB" and local["S"] == 2


def test_the_command_prints_the_table_and_writes_the_plots(runs, tmp_path):
    out = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "resist.compare", str(runs["resist0"]), str(runs["local"]), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # the two runs also differ in their epochs, a setting of its own column
    assert result.stdout.startswith("| protocol | S | l | model | dataset | settings | seeds | final acc |")
    assert "| resist | 2 | 10 | preact_resnet_mini | digits | train.epochs=3 | 0 |" in result.stdout
    assert "| local_sgd | 2 | 10 | preact_resnet_mini | digits | train.epochs=2 | 0 |" in result.stdout
    for name in ("accuracy_vs_bytes.png", "accuracy_vs_time.png", "accuracy_vs_epochs.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = subprocess.run(
        [sys.executable, "-m", "resist.compare", str(runs["local"]), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr


def test_runs_that_differ_in_a_setting_are_apart_and_the_setting_is_named(tmp_path):
    """An ablation: same protocol, workers and l, another minimum depth; seeds still group."""
    kept = [
        write_run(tmp_path / f"base{seed}", protocol="resist", seed=seed, accuracies=[0.5], bytes_per_eval=1e6)
        for seed in (0, 1)
    ]
    deeper = write_run(
        tmp_path / "deeper",
        protocol="resist",
        seed=0,
        accuracies=[0.4],
        bytes_per_eval=1e6,
        config={"protocol": {"decomposition": {"min_depth": 3}}, "train": {"eval_every": 5}, "logger": {"wandb": True}},
    )
    for path in kept:
        (path / "resolved_config.yaml").write_text(
            (path / "resolved_config.yaml")
            .read_text()
            .replace("local_steps: 10", "local_steps: 10\n  decomposition: {min_depth: 0}")
        )
    base, variant = table([load_run(RunDir(p)) for p in [*kept, deeper]], [])
    assert base["seeds"] == "0,1" and base["settings"] == "protocol.decomposition.min_depth=0"
    assert variant["seeds"] == "0" and variant["settings"] == "protocol.decomposition.min_depth=3"


def test_diloco_and_resist_with_an_outer_optimizer_are_groups_of_their_own(tmp_path):
    """DiLoCo is a protocol beside the others; ResIST with the outer optimizer is apart from plain
    ResIST by its setting; each groups its seeds."""
    plain = {"outer_optimizer": "none", "outer_lr": 0.7, "outer_momentum": 0.9}
    paths = [
        write_run(
            tmp_path / f"diloco{seed}", protocol="diloco", seed=seed, accuracies=[0.5 + seed / 10], bytes_per_eval=2e6
        )
        for seed in (0, 1)
    ] + [
        write_run(
            tmp_path / name, protocol="resist", seed=0, accuracies=[0.4], bytes_per_eval=1e6, config={"protocol": p}
        )
        for name, p in (("resist", plain), ("outer", {**plain, "outer_optimizer": "nesterov"}))
    ]
    diloco, resist, outer = table([load_run(RunDir(p)) for p in paths], [])
    assert diloco["protocol"] == "diloco" and diloco["seeds"] == "0,1" and diloco["final acc"] == "55.00 % ± 7.07 %"
    assert (resist["protocol"], outer["protocol"]) == ("resist", "resist")
    assert "protocol.outer_optimizer=none" in resist["settings"]
    assert "protocol.outer_optimizer=nesterov" in outer["settings"]


def test_an_unfinished_run_or_a_stray_folder_is_refused(runs, tmp_path):
    lines = (runs["local"] / "metrics.jsonl").read_text().splitlines()[:-1]
    (runs["local"] / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match="has not finished .* run it again: it saved no checkpoint"):
        load_run(RunDir(runs["local"]))
    (runs["local"] / "checkpoints" / "step-000000010").mkdir(parents=True)
    (runs["local"] / "checkpoints" / "step-000000010" / "manifest.json").write_text("{}")
    with pytest.raises(
        Exception, match=f"has not finished .* resume it with python -m resist.run resume={runs['local']}"
    ):
        load_run(RunDir(runs["local"]))
    with pytest.raises(Exception, match="neither a run directory"):
        run_dirs([tmp_path / "nothing-here"])
