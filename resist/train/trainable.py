"""Making a module trainable: the optimizer a run trains it with, and its training mode."""

from __future__ import annotations

import torch

from resist.config import OptimConfig


def trainable(
    module: torch.nn.Module, optim: OptimConfig, *, compile: bool
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The module to run (``torch.compile``-d when ``compile``) and a fresh SGD optimizer over its
    parameters; ``module`` is put in training mode."""
    optimizer = torch.optim.SGD(
        module.parameters(),
        lr=optim.lr,
        momentum=optim.momentum,
        weight_decay=optim.weight_decay,
        nesterov=optim.nesterov,
    )
    module.train()
    return (torch.compile(module) if compile else module), optimizer
