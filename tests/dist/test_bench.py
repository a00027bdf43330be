"""The benchmark as a user runs it: measured bytes equal the cost model exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from resist.models.preact import build_model, count_parameters
from resist.models.spec import ARCHITECTURES
from tests.conftest import REPO


def test_bench_compares_protocols_side_by_side(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "resist.bench", "model=preact_resnet_mini", "train.batch_size=8", "num_workers=2",
         "protocol.local_steps=2", "bench.rounds=2", "bench.warmup_rounds=1", "dataset.num_train_samples=256",
         f"hydra.run.dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ddp / local_sgd: wire bytes per l steps 2.000" in result.stdout
    report = json.loads((tmp_path / "bench.json").read_text())
    parameters = count_parameters(build_model(ARCHITECTURES["preact_resnet_mini"], 10, device="meta"))
    full_model = parameters * 4
    ddp, local = report["protocols"]["ddp"], report["protocols"]["local_sgd"]
    assert (ddp["steps_per_round"], local["steps_per_round"]) == (1, 2)
    for figures in (ddp, local):
        assert figures["wire_bytes_per_round_per_worker"] == full_model  # 2(S-1)/S = 1 at S = 2
        assert figures["payload_bytes_per_round_per_worker"] == full_model
        assert figures["table1_bytes_per_round"] == 2 * 2 * full_model
        assert figures["param_bytes_per_worker"] == full_model
        assert figures["held_bytes_per_worker"] == 2 * full_model  # parameters + momentum
        assert figures["step_seconds"] > 0 and figures["round_seconds"] > 0
        assert figures["peak_memory_bytes_per_worker"] > 0
        assert figures["images_per_second_per_worker"] == pytest.approx(8 / figures["step_seconds"], rel=1e-12)
        assert figures["handoff_seconds_per_round"] == 0.0 < figures["train_sync_seconds_per_round"]
    assert local["operations_per_round_per_worker"] == 1  # one all-reduce of the parameters
    assert local["expected_wire_bytes_per_round_per_worker"] == local["wire_bytes_per_round_per_worker"]
    assert ddp["wire_bytes_per_local_steps_per_worker"] == 2 * local["wire_bytes_per_local_steps_per_worker"]
    resist = report["protocols"]["resist"]
    block = count_parameters(build_model(ARCHITECTURES["preact_resnet_mini"], 10, device="meta").block(2, 1)) * 4
    assert resist["param_bytes_per_worker"] == full_model - 2 * block  # 4 partitioned blocks, 2 per worker
    assert resist["table1_bytes_per_round"] == 2 * 2 * (full_model - 2 * block)
    assert resist["wire_bytes_per_round_per_worker"] < local["wire_bytes_per_round_per_worker"]
    assert "resist / local_sgd: wire bytes/round" in result.stdout
    assert 0 < resist["expected_wire_bytes_per_round_per_worker"] < local["wire_bytes_per_round_per_worker"]
    # every measured round hands its blocks on: the cost model of those rounds' partitions, to the byte
    window = resist["window_wire_bytes_per_round_per_worker"]
    assert resist["wire_bytes_per_round_per_worker"] == pytest.approx(window, rel=1e-12, abs=0)
    assert resist["handoff_seconds_per_round"] > 0 and resist["operations_per_round_per_worker"] >= 1
    for protocol in ("ddp", "local_sgd"):
        assert (tmp_path / protocol / "metrics.jsonl").exists()
        assert not (tmp_path / protocol / "checkpoints").exists()  # the benchmark writes none


def test_compressed_bench_measures_what_the_cost_model_expects(tmp_path):
    """``protocol.compress=int8`` reaches local SGD and ResIST; local SGD's measured bytes equal the
    compressed cost model exactly, and both are set against the float32 ring."""
    result = subprocess.run(
        [sys.executable, "-m", "resist.bench", "model=preact_resnet_mini", "train.batch_size=8", "num_workers=2",
         "protocol.local_steps=2", "bench.rounds=2", "bench.warmup_rounds=1", "dataset.num_train_samples=256",
         "protocol.compress=int8", "bench.protocols=[local_sgd,resist]", f"hydra.run.dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    local, resist = report["protocols"]["local_sgd"], report["protocols"]["resist"]
    numel = count_parameters(build_model(ARCHITECTURES["preact_resnet_mini"], 10, device="meta"))
    assert report["float32_ring_local_sgd_wire_bytes"] == numel * 4  # 2(S-1)/S = 1 at S = 2
    assert local["wire_bytes_per_round_per_worker"] == local["expected_wire_bytes_per_round_per_worker"]
    # 2 shards cut at a multiple of 256 values, each sent once per phase: a byte per value, 4 per chunk
    first = -(-numel // 512) * 256
    chunks = -(-first // 256) + -(-(numel - first) // 256)
    assert local["wire_bytes_per_round_per_worker"] == numel + 4 * chunks
    # int8 shared layers, float32 deliveries: below float32 local SGD (on this small network, whose
    # partitioned blocks hold most of its weights, above int8 local SGD)
    assert 0 < resist["wire_bytes_per_round_per_worker"] < report["float32_ring_local_sgd_wire_bytes"]
    assert "resist with compress=int8 / float32 ring local SGD" in result.stdout
    window = resist["window_wire_bytes_per_round_per_worker"]
    assert resist["wire_bytes_per_round_per_worker"] == pytest.approx(window, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    "model",
    [
        ("model=tv_resnet50", "model.cifar_stem=true", "model.width=4"),  # layer3: 5 partitioned blocks
        ("model=vit_tiny", "model.patch_size=8"),  # 11 partitioned encoder layers
    ],
    ids=["tv_resnet50", "vit_tiny"],
)
def test_bench_on_torchvision_networks_measures_the_cost_models_bytes(model, tmp_path):
    """Local SGD and ResIST on torchvision's networks: every measured round's bytes are the cost
    model's of its partitions, to the byte, and a worker holds the shared layers and its blocks."""
    result = subprocess.run(
        [sys.executable, "-m", "resist.bench", *model, "train.batch_size=4", "num_workers=2",
         "protocol.local_steps=2", "bench.rounds=2", "bench.warmup_rounds=1", "dataset.num_train_samples=64",
         "bench.protocols=[local_sgd,resist]", f"hydra.run.dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    local, resist = report["protocols"]["local_sgd"], report["protocols"]["resist"]
    assert local["wire_bytes_per_round_per_worker"] == local["expected_wire_bytes_per_round_per_worker"]
    window = resist["window_wire_bytes_per_round_per_worker"]
    assert resist["wire_bytes_per_round_per_worker"] == pytest.approx(window, rel=1e-12, abs=0)
    from resist.config.hydra_door import load_run_config
    from resist.protocols.expected_bytes import ModelShapes
    from resist.run_dir import RunDir

    shapes = ModelShapes(load_run_config(RunDir(tmp_path / "resist")))
    blocks = len(shapes.blocks)
    parameters = shapes.params / 4
    block_params = next(iter(shapes.block_params.values())) / 4  # every partitioned block is alike
    assert local["param_bytes_per_worker"] == local["param_bytes_per_worker_mean"] == 4 * parameters
    largest = -(-blocks // 2)  # the 2 sub-networks hold ⌈n/2⌉ and ⌊n/2⌋ blocks
    assert resist["param_bytes_per_worker"] == 4 * (parameters - block_params * (blocks - largest))
    assert resist["param_bytes_per_worker_mean"] == 4 * (parameters - block_params * blocks / 2)
