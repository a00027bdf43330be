"""torchvision's Vision Transformer (Dosovitskiy et al., 2021) as a ResIST network: instances of
``torchvision.models.VisionTransformer`` that may hold a subset of their encoder layers.

A ViT has one stage (stage 0), whose blocks are its encoder layers. Every encoder layer is pre-LN,
``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``, so it keeps its input's shape and a left-out
layer is exactly the identity; ResIST partitions every layer but the first. Test-time scaling
multiplies both residual branches of a layer, exactly, through their last linear maps (the
attention's ``out_proj`` and the MLP's second linear layer, weight and bias), so the scale is part
of the exported weights.

The sizes (:data:`~resist.models.catalog.VISION_TRANSFORMERS`) are DeiT's tiny and small shapes (Touvron et al., 2021):
with 32-pixel images and ``patch_size=4`` a ViT sees 64 patches and a class token.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import cast

import torch
from torch import nn
from torchvision.models.vision_transformer import EncoderBlock, VisionTransformer

from resist.generators import seeded_global_generator
from resist.models.catalog import VISION_TRANSFORMERS, vit_layout
from resist.models.residual_units import BlockSlots, ResidualUnits, SequentialSlots
from resist.seeding import derive_seed

LAYER_PREFIX = "encoder_layer_"
"""torchvision's name of an encoder layer, before its index."""


def _patch_projection(in_channels: int, hidden_dim: int, patch_size: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, hidden_dim, kernel_size=patch_size, stride=patch_size)


class TorchvisionViT(VisionTransformer, ResidualUnits):
    """``torchvision.models.VisionTransformer`` of size ``name`` holding all encoder layers or
    ``held_blocks[0]`` of them. The state dict of a network holding every layer is torchvision's,
    key for key (``encoder.layers.encoder_layer_<i>.…``)."""

    def __init__(
        self,
        name: str,
        num_classes: int,
        *,
        image_size: int,
        patch_size: int,
        in_channels: int = 3,
        held_blocks: Mapping[int, Iterable[int]] | None = None,
    ) -> None:
        size = VISION_TRANSFORMERS[name]
        super().__init__(
            image_size,
            patch_size,
            size.num_layers,
            size.num_heads,
            size.hidden_dim,
            size.mlp_dim,
            num_classes=num_classes,
        )
        self.size, self.in_channels, self.layout = size, in_channels, vit_layout(name)
        held = {stage: set(ids) for stage, ids in (held_blocks or {}).items()}
        self.layout.check_held_blocks(held)
        if in_channels != 3:
            self.conv_proj = _patch_projection(in_channels, size.hidden_dim, patch_size)
        ids = sorted(held.get(0, range(size.num_layers)))
        built = list(self.encoder.layers)
        self.encoder.layers = SequentialSlots([built[i] for i in ids], ids, prefix=LAYER_PREFIX)

    def stage_slots(self, stage: int) -> BlockSlots:
        if stage != 0:
            raise ValueError(f"a Vision Transformer has one stage (0), not {stage}")
        return cast(SequentialSlots, self.encoder.layers)

    def initialize(self, seed: int) -> None:
        """torchvision's own initialisation: the layers outside the encoder layers are those of a
        layer-less ``VisionTransformer`` built from one derived seed, each encoder layer an
        ``EncoderBlock`` built from its own."""
        size = self.size
        with seeded_global_generator(derive_seed(seed, "init", "outside_layers")):
            shell = VisionTransformer(
                self.image_size,
                self.patch_size,
                0,
                size.num_heads,
                size.hidden_dim,
                size.mlp_dim,
                num_classes=self.num_classes,
            )
            if self.in_channels != 3:  # torchvision's rule for its projection, at these input channels
                shell.conv_proj = _patch_projection(self.in_channels, size.hidden_dim, self.patch_size)
                fan_in = self.in_channels * self.patch_size**2
                nn.init.trunc_normal_(shell.conv_proj.weight, std=math.sqrt(1 / fan_in))
                nn.init.zeros_(shell.conv_proj.bias)
        with torch.no_grad():
            self.class_token.copy_(shell.class_token)
            self.encoder.pos_embedding.copy_(shell.encoder.pos_embedding)
        for mine, theirs in (
            (self.conv_proj, shell.conv_proj),
            (self.encoder.ln, shell.encoder.ln),
            (self.heads, shell.heads),
        ):
            mine.load_state_dict(theirs.state_dict())
        slots = self.stage_slots(0)
        for b, layer in zip(slots.block_ids, slots.slot_modules(), strict=True):
            with seeded_global_generator(derive_seed(seed, "init", 0, b)):
                fresh = EncoderBlock(size.num_heads, size.hidden_dim, size.mlp_dim, 0.0, 0.0)
            layer.load_state_dict(fresh.state_dict())

    def scale_residual_branches(self, stage: int, block_ids: Iterable[int], scale: float) -> None:
        with torch.no_grad():
            for index in block_ids:
                layer = cast(EncoderBlock, self.block(stage, index))
                for linear in (layer.self_attention.out_proj, layer.mlp[3]):
                    linear.weight.mul_(scale)
                    linear.bias.mul_(scale)
