"""torchvision's ResNets and Vision Transformer as ResIST networks: torchvision's own state dicts,
left-out blocks that are exactly the identity, exact test-time scaling, per-block seeded weights."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from resist.config import BatchNormMode, ModelConfig
from resist.models.catalog import TORCHVISION_RESNETS, VISION_TRANSFORMERS, layout_of
from resist.models.preact import count_parameters
from resist.models.zoo import build_network


def _options(arch: str, **changes) -> ModelConfig:
    batchnorm = BatchNormMode.running_stats if arch.startswith("tv_") else BatchNormMode.batch_stats
    return ModelConfig(arch, batchnorm=batchnorm, **changes)


def _torchvision(arch: str, num_classes: int, image_size: int = 32, patch_size: int = 4) -> nn.Module:
    if arch.startswith("tv_"):
        return getattr(torchvision.models, arch.removeprefix("tv_"))(num_classes=num_classes)
    size = VISION_TRANSFORMERS[arch]
    return torchvision.models.VisionTransformer(
        image_size, patch_size, size.num_layers, size.num_heads, size.hidden_dim, size.mlp_dim, num_classes=num_classes
    )


@pytest.mark.parametrize("arch", [*TORCHVISION_RESNETS, *VISION_TRANSFORMERS])
def test_the_whole_network_has_torchvisions_state_dict(arch):
    """Key for key and shape for shape (torchvision's own network, built on the meta device)."""
    ours = build_network(_options(arch), 10, in_channels=3, image_size=32, device="meta")
    with torch.device("meta"):
        theirs = _torchvision(arch, 10)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert isinstance(ours, torchvision.models.ResNet | torchvision.models.VisionTransformer)


def test_layouts_follow_the_papers_rule():
    """The non-first blocks of the longest stage (every stage of ResNet-18, where all tie), every
    encoder layer but the first of a ViT; units are numbered over all stages."""
    assert layout_of("tv_resnet18").partitioned_units(None) == (1, 3, 5, 7)
    assert layout_of("tv_resnet50").partitioned_units(None) == tuple(range(3 + 4 + 1, 3 + 4 + 6))
    assert layout_of("tv_resnet152").partitioned_units(2) == tuple(range(3 + 8 + 1, 3 + 8 + 36))
    assert layout_of("vit_tiny").partitioned_units(None) == tuple(range(1, 12))
    assert layout_of("tv_resnet34").removable[0] == (0, 1, 2) and layout_of("tv_resnet50").removable[0] == (1, 2)
    assert layout_of("tv_resnet18").locate(5) == (2, 1)


def test_cifar_stem_and_width():
    """``cifar_stem``: a 3×3 stride-1 stem convolution and no max-pool; ``width`` scales every stage."""
    model = build_network(_options("tv_resnet18", cifar_stem=True, width=16), 10, in_channels=1, image_size=32)
    assert model.conv1.weight.shape == (16, 1, 3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity) and model.fc.in_features == 128
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


CASES = {  # network, image side, held blocks of its partitioned stage
    "tv_resnet34": (_options("tv_resnet34", cifar_stem=True, width=8), 16, {2: [0, 2, 5]}),
    "tv_resnet50": (_options("tv_resnet50", cifar_stem=True, width=4), 16, {2: [0, 1, 4]}),
    "vit_tiny": (_options("vit_tiny", patch_size=4), 16, {0: [0, 3, 4, 11]}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_left_out_blocks_are_exactly_zeroed_residual_branches(case):
    """A sub-network computes exactly what the whole network computes with the left-out blocks'
    branches scaled by 0 (a post-activation block's input is a ReLU's output, so relu(x + 0) = x),
    in training and evaluation mode; a held block has the same initial weights in both."""
    options, side, held = CASES[case]
    ((stage, blocks),) = held.items()
    whole = build_network(options, 10, in_channels=3, image_size=side, init_seed=3).double()
    sub = build_network(options, 10, in_channels=3, image_size=side, init_seed=3, held_blocks=held).double()
    assert sub.held_block_ids(stage) == tuple(blocks)
    for b in blocks:
        mine, theirs = sub.block(stage, b).parameters(), whole.block(stage, b).parameters()
        assert all(torch.equal(p, q) for p, q in zip(mine, theirs, strict=True))
    left_out = [b for b in range(whole.layout.blocks_per_stage[stage]) if b not in blocks]
    whole.scale_residual_branches(stage, left_out, 0.0)
    x = torch.randn(3, 3, side, side, dtype=torch.float64)
    for training in (True, False):
        whole.train(training), sub.train(training)
        assert torch.equal(sub(x), whole(x))


def test_scaling_a_resnet_block_scales_its_branch_before_the_addition():
    model = build_network(
        _options("tv_resnet50", cifar_stem=True, width=4), 10, in_channels=3, image_size=16, init_seed=1
    )
    model = model.double().eval()
    block = model.block(2, 3)
    x = torch.relu(torch.randn(2, 64, 4, 4, dtype=torch.float64))
    seen = {}
    handle = block.bn3.register_forward_hook(
        lambda _, __, out: seen.update(branch=out.clone())
    )  # the block adds to it in place
    block(x)
    handle.remove()
    model.scale_residual_branches(2, [3], 0.25)
    torch.testing.assert_close(block(x), torch.relu(x + 0.25 * seen["branch"]), rtol=0, atol=1e-12)


def test_scaling_an_encoder_layer_scales_both_branches():
    model = build_network(_options("vit_tiny"), 10, in_channels=3, image_size=8, init_seed=1).double().eval()
    layer = model.block(0, 5)
    x = torch.randn(2, 5, 192, dtype=torch.float64)
    ln_1, attention, ln_2, mlp = layer.ln_1, layer.self_attention, layer.ln_2, layer.mlp
    with torch.no_grad():
        attended = attention(ln_1(x), ln_1(x), ln_1(x), need_weights=False)[0]
        middle = x + 0.5 * attended
        expected = middle + 0.5 * mlp(ln_2(middle))
        model.scale_residual_branches(0, [5], 0.5)
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("arch", ["tv_resnet18", "vit_tiny"])
def test_seeded_initialisation_is_per_block_and_follows_torchvision(arch):
    """The same seed gives the same network whatever the global generator; torchvision's rules:
    Kaiming-normal (fan out) convolutions and unit BatchNorm for a ResNet; a zero classifier and
    class token for a ViT."""
    options = _options(arch, cifar_stem=True) if arch.startswith("tv_") else _options(arch)
    a = build_network(options, 10, in_channels=3, image_size=32, init_seed=1)
    torch.manual_seed(123)
    b = build_network(options, 10, in_channels=3, image_size=32, init_seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    stage = a.layout.default_stages[0]
    weight = "conv1.weight" if arch.startswith("tv_") else "self_attention.in_proj_weight"
    first, second = (a.block(stage, b).get_parameter(weight) for b in (0, 1))
    assert not torch.equal(first, second)
    if arch.startswith("tv_"):
        stem_change = 64 * 3 * 3 * 3 - 64 * 3 * 7 * 7
        assert count_parameters(a) == count_parameters(_torchvision(arch, 10)) + stem_change
        assert torch.equal(a.bn1.weight, torch.ones(64))
        fan_out = 64 * 9
        assert abs(a.layer1[0].conv1.weight.std().item() - (2 / fan_out) ** 0.5) < 0.01
    else:
        assert not a.heads.head.weight.any() and not a.class_token.any()
