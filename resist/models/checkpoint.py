"""The final model as an ordinary inference checkpoint of the plain network."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from resist.checkpoints import atomic_write
from resist.models.preact import PreActBasicBlock, PreActBottleneck, PreActResNet, build_model
from resist.models.spec import ARCHITECTURES, BatchNormMode


def folded_state_dict(model: PreActResNet) -> dict[str, torch.Tensor]:
    """``model``'s state dict with every block's residual scale folded into the last convolution of
    its branch (exact: the branch is linear in that weight), so the plain network, with all scales
    1, computes the same function."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for name, module in model.named_modules():
        scale = getattr(module, "residual_scale", 1.0)
        if scale != 1.0:
            last = "conv3" if isinstance(module, PreActBottleneck) else "conv2"
            assert isinstance(module, PreActBasicBlock | PreActBottleneck)
            state[f"{name}.{last}.weight"] *= scale
    return state


def save_inference_checkpoint(model: nn.Module, path: Path, *, num_classes: int, in_channels: int) -> None:
    """Write ``model`` (a :class:`PreActResNet`, scales folded in) with what rebuilds its network,
    atomically (a crash leaves the previous file or none)."""
    assert isinstance(model, PreActResNet)
    buffer = io.BytesIO()
    torch.save(
        {
            "arch": model.spec.name,
            "num_classes": num_classes,
            "in_channels": in_channels,
            "batchnorm": model.batchnorm.value,
            "state_dict": folded_state_dict(model),
        },
        buffer,
    )
    atomic_write(path, buffer.getvalue())


def load_inference_model(path: Path, device: str = "cpu") -> PreActResNet:
    """The plain network of a ``final_model.pt``, in eval mode. The file is read with
    ``weights_only=True``: tensors and plain data only, so a file holding pickled code is refused
    (``pickle.UnpicklingError``) instead of run."""
    checkpoint: dict[str, Any] = torch.load(path, map_location=device, weights_only=True)
    model = build_model(
        ARCHITECTURES[checkpoint["arch"]],
        checkpoint["num_classes"],
        in_channels=checkpoint["in_channels"],
        batchnorm=BatchNormMode(checkpoint["batchnorm"]),
        device=device,
    )
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
