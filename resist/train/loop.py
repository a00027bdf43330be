"""The one training loop every protocol runs through."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from resist.config import Config, EvalUnit
from resist.data import sources
from resist.data.batches import BatchStream
from resist.logging import MetricSink, Record
from resist.models.preact import build_model, count_parameters
from resist.models.spec import ARCHITECTURES
from resist.protocols import build_protocol
from resist.seeding import derive_seed
from resist.train.evaluate import evaluate
from resist.train.schedule import lr_at


@dataclass(frozen=True)
class Worker:
    """Where this process sits: its rank among ``num_workers`` and its device."""

    rank: int = 0
    num_workers: int = 1
    device: torch.device = torch.device("cpu")


@dataclass(frozen=True)
class StepPlan:
    """How many optimizer steps the run takes, and when it evaluates."""

    steps_per_epoch: int
    total_steps: int
    eval_every_steps: int

    @classmethod
    def from_config(cls, cfg: Config, steps_per_epoch: int) -> StepPlan:
        total = cfg.train.epochs * steps_per_epoch
        if cfg.train.max_steps is not None:
            total = min(total, cfg.train.max_steps)
        unit = steps_per_epoch if cfg.train.eval_unit == EvalUnit.epochs else 1
        return cls(steps_per_epoch, total, cfg.train.eval_every * unit)

    def evaluates_after(self, steps_done: int) -> bool:
        """Evaluate after ``steps_done`` steps: every ``eval_every_steps`` and at the end."""
        return steps_done % self.eval_every_steps == 0 or steps_done == self.total_steps


def train(cfg: Config, worker: Worker, sink: MetricSink) -> Record:
    """Train as ``worker``, sending records to ``sink``; return the summary record.

    Randomness is derived from ``cfg.seed``: model initialisation (same on every worker), data order
    (per the sharding mode) and augmentation (per worker). Deterministic on CPU.
    """
    data = sources.load(cfg.dataset, cfg.seed)
    torch.manual_seed(derive_seed(cfg.seed, "init"))
    model = build_model(ARCHITECTURES[cfg.model.arch], data.num_classes, data.in_channels, cfg.model.batchnorm)
    model = model.to(worker.device)
    torch.manual_seed(derive_seed(cfg.seed, "augment", worker.rank))

    protocol = build_protocol(cfg)
    module = protocol.setup(model)
    stream = BatchStream(
        data.train,
        cfg.train.batch_size,
        worker.num_workers,
        worker.rank,
        cfg.seed,
        cfg.dataset.sharding,
        cfg.dataset.loader_workers,
        worker.device,
    )
    test_loader = DataLoader(
        data.test,
        batch_size=cfg.train.eval_batch_size,
        shuffle=False,
        num_workers=cfg.dataset.loader_workers,
        pin_memory=worker.device.type == "cuda",
    )
    plan = StepPlan.from_config(cfg, stream.steps_per_epoch)
    optimizer = torch.optim.SGD(
        module.parameters(),
        lr=cfg.optim.lr,
        momentum=cfg.optim.momentum,
        weight_decay=cfg.optim.weight_decay,
        nesterov=cfg.optim.nesterov,
    )

    sink.log(
        {
            "event": "start",
            "step": 0,
            "total_steps": plan.total_steps,
            "steps_per_epoch": plan.steps_per_epoch,
            "num_workers": worker.num_workers,
            "model/params": count_parameters(model),
            "data": data.description,
        }
    )
    start = time.perf_counter()
    compute_s = eval_s = 0.0
    loss_sum = torch.zeros((), device=worker.device)
    correct = torch.zeros((), dtype=torch.int64, device=worker.device)
    seen = samples = 0
    last_eval: Record = {}
    module.train()
    for step in range(plan.total_steps):
        tick = time.perf_counter()
        images, labels = next(stream)
        lr = lr_at(step, plan.total_steps, cfg.optim)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        logits = module(images)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        protocol.after_backward()
        optimizer.step()
        protocol.after_optimizer_step(step + 1)
        loss_sum += loss.detach() * len(labels)
        correct += (logits.detach().argmax(dim=1) == labels).sum()
        seen += len(labels)
        samples += len(labels)
        compute_s += time.perf_counter() - tick

        steps_done = step + 1
        epoch = steps_done / plan.steps_per_epoch
        if steps_done % cfg.train.log_every_steps == 0 or steps_done == plan.total_steps:
            sink.log(
                {
                    "event": "train",
                    "step": steps_done,
                    "epoch": epoch,
                    "samples": samples,
                    "lr": lr,
                    "train/loss": loss_sum.item() / seen,
                    "train/acc1": correct.item() / seen,
                    "time/elapsed_s": time.perf_counter() - start,
                    "time/compute_s": compute_s,
                }
            )
            loss_sum.zero_()
            correct.zero_()
            seen = 0
        if plan.evaluates_after(steps_done):
            eval_model = protocol.eval_model()
            if eval_model is not None:
                tick = time.perf_counter()
                last_eval = evaluate(eval_model, test_loader, worker.device)
                eval_s += time.perf_counter() - tick
                sink.log(
                    {
                        "event": "eval",
                        "step": steps_done,
                        "epoch": epoch,
                        **last_eval,
                        "time/elapsed_s": time.perf_counter() - start,
                        "time/eval_s": eval_s,
                    }
                )

    summary = {
        "event": "summary",
        "step": plan.total_steps,
        "epoch": plan.total_steps / plan.steps_per_epoch,
        "samples": samples,
        **last_eval,
        "time/elapsed_s": time.perf_counter() - start,
        "time/compute_s": compute_s,
        "time/eval_s": eval_s,
    }
    sink.log(summary)
    return summary
