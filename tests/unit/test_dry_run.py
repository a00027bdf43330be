"""``dry_run=true``: the cost model's bytes per round for the paper's network, in seconds, with no run
directory left behind."""

from __future__ import annotations

import pytest

from tests.conftest import run_main_in_process


def _dry_run(tmp_path, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> str:
    monkeypatch.chdir(tmp_path)
    status, stdout, stderr = run_main_in_process(["dry_run=true", *overrides], monkeypatch)
    assert status == 0, stderr
    assert list(tmp_path.iterdir()) == []  # no run directory, nothing written
    return stdout


def test_paper_network_at_four_workers_prints_local_sgd_and_resist_bytes(tmp_path, monkeypatch):
    out = _dry_run(tmp_path, monkeypatch, "model=preact_resnet101", "num_workers=4", "dataset=cifar10")
    assert "41,350,730 parameters" in out
    # local SGD: 2(S-1)/S x 41,350,730 x 4 bytes
    assert "local SGD (whole model, ring all-reduce): 248,104,380 B = 248.1 MB" in out
    # ResIST: the shared layers' ring all-reduce, 1.5 x 15,375,946 x 4 bytes (the README's shared
    # count), plus the expected hand-off: 22 blocks of 1,180,672 x 4 bytes, each moving with
    # probability 1 - (6^2 + 6^2 + 5^2 + 5^2) / 22^2, sent once, divided among 4 workers.
    shared = 1.5 * 15_375_946 * 4
    handoff = (1 - 122 / 484) * 22 * 1_180_672 * 4 / 4
    assert f"resist: {shared + handoff:,.0f} B = 111.7 MB per round per worker" in out
    assert out.count("  round ") == 3


def test_minimum_depth_and_slurm_show_their_plan(tmp_path, monkeypatch):
    out = _dry_run(
        tmp_path,
        monkeypatch,
        "model=preact_resnet101",
        "num_workers=8",
        "protocol.decomposition.min_depth=4",
        "launcher=slurm",
    )
    assert "(mean over rounds 1-2000 of this run's assignments)" in out
    assert 'sbatch plan (submitit parameters): {"cpus_per_task": 1' in out and '"tasks_per_node": 8' in out


def test_the_paper_network_sized_on_the_default_digits_names_its_bytes_on_cifar10(tmp_path, monkeypatch):
    """The issue's command leaves the default dataset (digits: 1 channel), whose stem is smaller by
    64 × 3 × 3 × 2 weights: 6,912 wire bytes at S = 4; the CIFAR-10 figure is printed beside it."""
    out = _dry_run(tmp_path, monkeypatch, "model=preact_resnet101", "num_workers=4")
    assert "local SGD (whole model, ring all-reduce): 248,097,468 B = 248.1 MB" in out
    assert (
        "(with dataset digits: 1 input channel(s), 10 classes; with dataset=cifar10, 3 channels and 10 classes: " in out
    )
    assert "248,104,380 B = 248.1 MB)" in out
    cifar = _dry_run(tmp_path, monkeypatch, "model=preact_resnet101", "num_workers=4", "dataset=cifar10")
    assert "with dataset=cifar10" not in cifar


def test_ddp_with_torchs_hooks_prints_their_bytes(tmp_path, monkeypatch):
    """bf16: half of float32's 248,104,380 B; PowerSGD at rank 2: 2(S-1)/S x 4 bytes x (the values
    of vectors and small matrices + the P and Q factors of the others + DDP's used-parameter map)."""
    paper = ("model=preact_resnet101", "num_workers=4", "dataset=cifar10", "protocol=ddp")
    bf16 = _dry_run(tmp_path, monkeypatch, *paper, "protocol.compress=bf16")
    assert "ddp with compress=bf16 (gradients, every step): 124,052,190 B = 124.1 MB, 0.500 of float32's" in bf16
    assert "local SGD with compress" not in bf16
    powersgd = _dry_run(tmp_path, monkeypatch, *paper, "protocol.compress=powersgd")
    # and at every step DDP's used-parameter map: an int32 for each of the 204 parameter tensors
    assert f"parameter tensor): {248_104_380 + 1.5 * 4 * 204:,.0f} B" in powersgd
    assert f"from step 2 on: {1.5 * 4 * (31_626 + 34_452 + 286_518 + 204):,.0f} B = 2.1 MB" in powersgd
