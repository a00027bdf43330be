"""Memory a worker uses: peak allocation and the bytes of what it holds."""

from __future__ import annotations

import resource

import torch
from torch import nn


def peak_memory_bytes(device: torch.device) -> int:
    """Peak CUDA memory allocated by this process on ``device``, or its peak RSS on CPU (bytes)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def held_bytes(module: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, int]:
    """Bytes this worker holds: ``(parameters, parameters + optimizer state such as momentum)``."""
    parameters = sum(p.numel() * p.element_size() for p in module.parameters())
    state = sum(
        t.numel() * t.element_size()
        for s in optimizer.state.values()
        for t in s.values()
        if isinstance(t, torch.Tensor)
    )
    return parameters, parameters + state
