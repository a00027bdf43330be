"""ResIST on torchvision's networks from the command line, and their ``final_model.pt`` loaded into
torchvision's own classes with ``strict=True``: the plain network scores what the run's evaluation
of the global model (test-time scaling and all) scored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from resist.comm.backends import run_in_threads
from resist.config import DatasetConfig, DatasetName
from resist.data import sources
from resist.models.catalog import VISION_TRANSFORMERS
from resist.models.checkpoint import load_inference_model, torchvision_model
from resist.train.evaluate import evaluate
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def _plain_resnet18(classes: int) -> nn.Module:
    """What a CIFAR user builds: torchvision's ResNet-18 with a 3×3 stride-1 stem and no max-pool."""
    model = torchvision.models.resnet18(num_classes=classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def _plain_vit_tiny(classes: int) -> nn.Module:
    size = VISION_TRANSFORMERS["vit_tiny"]
    return torchvision.models.VisionTransformer(
        32, 4, size.num_layers, size.num_heads, size.hidden_dim, size.mlp_dim, num_classes=classes
    )


CASES = {
    "tv_resnet18": (("model=tv_resnet18", "model.cifar_stem=true"), _plain_resnet18),
    "vit_tiny": (("model=vit_tiny",), _plain_vit_tiny),
}


@pytest.mark.parametrize("case", list(CASES))
def test_final_model_loads_strictly_into_torchvision_and_scores_the_runs_evaluation(case, tmp_path: Path):
    """Two ResIST rounds of one step on 2 workers (ResNet-18: its four stages' second blocks are
    partitioned, so sub-networks are rebuilt as their blocks per stage change; test-time scale 1/2)."""
    overrides, plain = CASES[case]
    run_dir = tmp_path / "run"
    result = run_cli(*overrides, "+debug=fast", "protocol.local_steps=1", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last_eval = [r for r in records if r["event"] == "eval"][-1]

    model = plain(10)
    saved = torch.load(run_dir / "final_model.pt", weights_only=True)
    model.load_state_dict(saved["state_dict"], strict=True)
    test = sources.load(DatasetConfig(name=DatasetName.synthetic, num_classes=10, num_test_samples=16), seed=0).test
    (scores,) = run_in_threads(1, lambda comm: evaluate(model, test, batch_size=8, comm=comm))
    assert scores["test/acc1"] == last_eval["test/acc1"]
    assert scores["test/loss"] == pytest.approx(last_eval["test/loss"], rel=1e-9)

    images = torch.stack([test[i][0] for i in range(8)])
    with torch.no_grad():
        expected = model.eval()(images)
        assert torch.equal(torchvision_model(run_dir / "final_model.pt")(images), expected)
        assert torch.equal(load_inference_model(run_dir / "final_model.pt")(images), expected)
