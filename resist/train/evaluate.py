"""Distributed evaluation: each worker scores its slice of the test set, sums are all-reduced."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from resist.comm import Comm, Purpose
from resist.data.sharding import eval_shard


@torch.no_grad()
def evaluate(
    model: nn.Module, dataset: Dataset, *, batch_size: int, comm: Comm, loader_workers: int = 0
) -> dict[str, float]:
    """``test/loss`` (mean per sample), ``test/acc1`` and ``test/acc5`` (fractions in [0, 1]) of
    ``model`` on all of ``dataset``.

    Every worker evaluates the same (synchronised) model on its own whole batches
    (:func:`eval_shard`), so no worker sits through a full evaluation and the batches are exactly a
    single evaluator's; the four sums are all-reduced (billed to ``eval``). The model is put in
    eval mode and restored to its previous mode afterwards.
    """
    device = comm.device
    shard = eval_shard(len(dataset), batch_size=batch_size, rank=comm.rank, num_workers=comm.size)  # type: ignore[arg-type]
    loader = DataLoader(
        Subset(dataset, shard),
        batch_size=batch_size,
        shuffle=False,
        num_workers=loader_workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(0),  # (its base seed would otherwise come from the global one)
    )
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top-1 hits, top-5 hits, samples
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        logits = model(images).float()
        hits = logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]
        sums += torch.stack(
            [
                F.cross_entropy(logits, labels, reduction="sum").double(),
                hits[:, 0].sum().double(),
                hits.any(dim=1).sum().double(),
                torch.tensor(float(len(labels)), device=device),
            ]
        )
    model.train(was_training)
    comm.all_reduce([sums], Purpose.eval, average=False)
    loss, top1, top5, count = sums.tolist()
    return {"test/loss": loss / count, "test/acc1": top1 / count, "test/acc5": top5 / count}
