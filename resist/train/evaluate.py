"""Top-1 / top-5 accuracy and mean cross-entropy of a model on a dataset."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """``test/loss`` (mean per sample), ``test/acc1`` and ``test/acc5`` (fractions in [0, 1]).

    The model is put in eval mode and restored to its previous mode afterwards.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros(2, dtype=torch.int64, device=device)
    count = 0
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        logits = model(images)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top == labels[:, None]
        correct += torch.stack([hits[:, 0].sum(), hits.any(dim=1).sum()])
        count += len(labels)
    model.train(was_training)
    acc1, acc5 = (correct.double() / count).tolist()
    return {"test/loss": loss_sum.item() / count, "test/acc1": acc1, "test/acc5": acc5}
