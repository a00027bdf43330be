"""Pre-activation ResNets: parameter counts, shapes, partial networks, residual scaling."""

from __future__ import annotations

import pytest
import torch

from resist.config import BatchNormMode, ModelConfig
from resist.models.preact import build_model, count_parameters
from resist.models.spec import ARCHITECTURES, BlockKind, Stem


def test_paper_preact_resnet101_parameter_counts():
    spec = ARCHITECTURES["preact_resnet101"]
    assert spec.blocks_per_stage == (3, 4, 23, 3) and spec.block == BlockKind.basic
    assert count_parameters(build_model(spec, 10, device="meta")) == 41_350_730
    assert count_parameters(build_model(spec, 100, device="meta")) == 41_396_900


def test_paper_partition_of_preact_resnet101():
    """22 partitionable blocks of 1,180,672 parameters each; the rest (15,375,946) is shared."""
    spec = ARCHITECTURES["preact_resnet101"]
    layout = spec.layout
    (stage,) = layout.default_stages
    assert stage == 2 and layout.partitionable_blocks(stage) == tuple(range(1, 23))
    assert layout.partitioned_units(None) == tuple(range(3 + 4 + 1, 3 + 4 + 23))  # unit numbers over all stages
    model = build_model(spec, 10, device="meta")
    block_params = {count_parameters(model.block(stage, i)) for i in layout.partitionable_blocks(stage)}
    assert block_params == {1_180_672}
    assert count_parameters(model) - 22 * 1_180_672 == 15_375_946


@pytest.mark.parametrize(
    ("name", "blocks"),
    [
        ("preact_resnet152", (3, 4, 36, 3)),
        ("preact_resnet200", (3, 4, 50, 3)),
        ("preact_resnet18", (2, 2, 2, 2)),
        ("imagenet_preact_resnet50", (3, 4, 6, 3)),
        ("imagenet_preact_resnet101", (3, 4, 23, 3)),
        ("imagenet_preact_resnet152", (3, 8, 36, 3)),
        ("imagenet_preact_resnet200", (3, 24, 36, 3)),
    ],
)
def test_block_counts(name, blocks):
    spec = ARCHITECTURES[name]
    assert spec.blocks_per_stage == blocks
    model = build_model(spec, 10, device="meta")
    assert [len(model.held_block_ids(s)) for s in range(4)] == list(blocks)


def _bottleneck_resnet_parameters(blocks: tuple[int, ...], num_classes: int) -> int:
    """Independent count for the fb.resnet.torch pre-activation layout: stem conv7x7 + BN, blocks
    BN(c_in)-conv1x1-BN-conv3x3-BN-conv1x1 (+ conv1x1 shortcut when the shape changes), final BN, fc."""
    total, c_in = 3 * 64 * 49 + 2 * 64, 64
    for stage, count in enumerate(blocks):
        w = 64 * 2**stage
        for i in range(count):
            total += 2 * c_in + c_in * w + 2 * w + 9 * w * w + 2 * w + w * 4 * w
            total += c_in * 4 * w if i == 0 else 0
            c_in = 4 * w
    return total + 2 * c_in + c_in * num_classes + num_classes


@pytest.mark.parametrize("depth", [50, 101, 152, 200])
def test_imagenet_parameter_counts(depth):
    spec = ARCHITECTURES[f"imagenet_preact_resnet{depth}"]
    expected = _bottleneck_resnet_parameters(spec.blocks_per_stage, 1000)
    assert count_parameters(build_model(spec, 1000, device="meta")) == expected
    if depth == 50:
        assert expected == 25_549_480


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_forward_shapes(name):
    spec = ARCHITECTURES[name]
    size = 32 if spec.stem == Stem.cifar else 64
    small = count_parameters(build_model(spec, 7, device="meta")) < 2_000_000
    device = "cpu" if small else "meta"  # big ones: shape propagation only, no arithmetic
    model = build_model(spec, 7, device=device, init_seed=None if device == "meta" else 0)
    x = torch.randn(2, 3, size, size, device=device)
    assert model(x).shape == (2, 7)


def test_one_channel_input():
    model = build_model(ARCHITECTURES["preact_resnet_mini"], 10, in_channels=1, init_seed=0)
    assert model(torch.randn(3, 1, 16, 16)).shape == (3, 10)


@pytest.mark.parametrize("bn", list(BatchNormMode))
def test_removed_blocks_equal_zeroed_residual_branches(bn):
    """A network without some blocks computes exactly what the full one computes when those blocks'
    residual branches are multiplied by 0; seeded initialisation gives a block the same weights in
    every network that holds it."""
    spec = ARCHITECTURES["preact_resnet_mini_deep"]
    full = build_model(spec, 10, batchnorm=bn, init_seed=3).double()
    held = [0, 2, 3, 7]
    partial = build_model(spec, 10, batchnorm=bn, held_blocks={2: held}, init_seed=3).double()
    for block_id in held:
        for mine, theirs in zip(
            partial.block(2, block_id).parameters(), full.block(2, block_id).parameters(), strict=True
        ):
            assert torch.equal(mine, theirs)
    full.scale_residual_branches(2, [i for i in range(9) if i not in held], 0.0)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    for mode in (True, False):
        full.train(mode)
        partial.train(mode)
        assert torch.equal(partial(x), full(x))
    assert partial.held_block_ids(2) == tuple(held)
    assert count_parameters(partial) == count_parameters(full) - 5 * count_parameters(full.block(2, 1))


def test_seeded_initialisation_is_per_block_and_reproducible():
    spec = ARCHITECTURES["preact_resnet_mini"]
    a, b = build_model(spec, 10, init_seed=1), build_model(spec, 10, init_seed=1)
    c = build_model(spec, 10, init_seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.block(2, 1).conv1.weight, c.block(2, 1).conv1.weight)
    assert not torch.equal(a.block(2, 1).conv1.weight, a.block(2, 2).conv1.weight)
    torch.manual_seed(123)
    assert torch.equal(build_model(spec, 10, init_seed=1).stem.weight, a.stem.weight)  # global RNG irrelevant


def test_slots_can_hold_other_blocks():
    model = build_model(ARCHITECTURES["preact_resnet_mini"], 10, held_blocks={2: [0, 1, 3]}, device="meta")
    second_slot = model.stages[2].blocks[1]
    model.stages[2].assign([0, 2, 4])
    assert model.held_block_ids(2) == (0, 2, 4) and model.block(2, 2) is second_slot
    with pytest.raises(ValueError):
        model.stages[2].assign([0, 4, 2])


def test_residual_scale_scales_only_the_branch():
    torch.manual_seed(0)
    model = build_model(ARCHITECTURES["preact_resnet_mini"], 10, init_seed=0).double().eval()
    block = model.block(2, 3)
    x = torch.randn(2, 64, 8, 8, dtype=torch.float64)
    identity_plus_branch = block(x)
    block.residual_scale = 0.25
    branch = identity_plus_branch - x
    torch.testing.assert_close(block(x), x + 0.25 * branch, rtol=0, atol=1e-12)


def test_batchnorm_modes():
    batch = build_model(ARCHITECTURES["preact_resnet_mini"], 10, batchnorm=BatchNormMode.batch_stats)
    running = build_model(ARCHITECTURES["preact_resnet_mini"], 10, batchnorm=BatchNormMode.running_stats)
    assert len(list(batch.buffers())) == 0
    assert any(name.endswith("running_mean") for name, _ in running.named_buffers())


@pytest.mark.parametrize(
    ("held", "message"), [({2: [1, 2]}, "change the shape"), ({2: [0, 9]}, "no blocks"), ({7: [0]}, "stages 0..3")]
)
def test_invalid_held_blocks(held, message):
    with pytest.raises(ValueError, match=message):
        build_model(ARCHITECTURES["preact_resnet_mini"], 10, held_blocks=held, device="meta")


class _RunsCodeWhenUnpickled:
    """Unpickling calls ``marker.touch()``: a file that runs code when loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).touch, (self.marker,))


def test_inference_checkpoint_refuses_a_pickle_with_code(tmp_path):
    import pickle

    from resist.models.checkpoint import load_inference_model, save_inference_checkpoint

    model = build_model(ARCHITECTURES["preact_resnet_mini"], 10, init_seed=0)  # no NaN from empty memory
    good = tmp_path / "final_model.pt"
    save_inference_checkpoint(
        model, good, options=ModelConfig("preact_resnet_mini"), num_classes=10, in_channels=3, image_size=32
    )
    assert torch.equal(load_inference_model(good).classifier.weight, model.classifier.weight)

    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"arch": "preact_resnet_mini", "payload": _RunsCodeWhenUnpickled(marker)}, evil)
    with pytest.raises(pickle.UnpicklingError):
        load_inference_model(evil)
    assert not marker.exists()


def test_every_torch_load_in_the_package_is_weights_only():
    """torch 2.4 and 2.5 (which pyproject allows) unpickle arbitrary code by default."""
    from pathlib import Path

    import resist

    calls = [
        f"{path}:{number}"
        for path in Path(resist.__file__).parent.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "torch.load(" in line and "``torch.load(" not in line and "weights_only=True" not in line
    ]
    assert calls == []
