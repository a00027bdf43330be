"""Making a module trainable: the optimizer a run trains it with, and its training mode."""

from __future__ import annotations

import torch

from resist.config import OptimConfig, OptimizerName


def trainable(
    module: torch.nn.Module, optim: OptimConfig, *, compile: bool
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The module to run (``torch.compile``-d when ``compile``) and a fresh optimizer (``optim.name``:
    SGD or AdamW) over its parameters; ``module`` is put in training mode."""
    optimizer: torch.optim.Optimizer
    if optim.name == OptimizerName.adamw:
        beta1, beta2 = optim.betas
        optimizer = torch.optim.AdamW(
            module.parameters(), lr=optim.lr, betas=(beta1, beta2), eps=optim.eps, weight_decay=optim.weight_decay
        )
    else:
        optimizer = torch.optim.SGD(
            module.parameters(),
            lr=optim.lr,
            momentum=optim.momentum,
            weight_decay=optim.weight_decay,
            nesterov=optim.nesterov,
        )
    module.train()
    return (torch.compile(module) if compile else module), optimizer
