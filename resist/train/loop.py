"""The one training loop every protocol runs through."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from resist.comm import Comm
from resist.config import AmpMode, Config, EvalUnit
from resist.data import sources
from resist.data.batches import BatchStream
from resist.logging import MetricSink, Record
from resist.models.checkpoint import save_inference_checkpoint
from resist.models.preact import build_model, count_parameters
from resist.models.spec import ARCHITECTURES
from resist.protocols import build_protocol
from resist.run_dir import RunDir
from resist.seeding import derive_seed
from resist.train.evaluate import evaluate
from resist.train.memory import held_bytes, peak_memory_bytes
from resist.train.report import Reporter
from resist.train.schedule import lr_at


@dataclass(frozen=True)
class StepPlan:
    """The run's schedule in optimizer steps: its length, its rounds, when it logs and evaluates.

    A round is ``steps_per_round`` steps (the last may be shorter); logging and evaluation happen at
    round ends, at the first one at or after each multiple of their interval, and at the end.
    """

    steps_per_epoch: int
    total_steps: int
    steps_per_round: int
    eval_every_steps: int
    log_every_steps: int

    @classmethod
    def from_config(cls, cfg: Config, steps_per_epoch: int, steps_per_round: int) -> StepPlan:
        total = cfg.train.epochs * steps_per_epoch
        if cfg.train.max_steps is not None:
            total = min(total, cfg.train.max_steps)
        unit = {EvalUnit.steps: 1, EvalUnit.epochs: steps_per_epoch, EvalUnit.rounds: steps_per_round}
        return cls(
            steps_per_epoch,
            total,
            steps_per_round,
            cfg.train.eval_every * unit[cfg.train.eval_unit],
            cfg.train.log_every_steps,
        )

    @property
    def num_rounds(self) -> int:
        return -(-self.total_steps // self.steps_per_round)

    def ends_round(self, steps_done: int) -> bool:
        return steps_done % self.steps_per_round == 0 or steps_done == self.total_steps

    def _due(self, steps_done: int, every: int) -> bool:
        previous_round_end = (steps_done - 1) // self.steps_per_round * self.steps_per_round
        return steps_done // every > previous_round_end // every or steps_done == self.total_steps

    def logs_after(self, steps_done: int) -> bool:
        """Whether the round ending after ``steps_done`` steps writes a train record."""
        return self._due(steps_done, self.log_every_steps)

    def evaluates_after(self, steps_done: int) -> bool:
        """Whether the round ending after ``steps_done`` steps evaluates."""
        return self._due(steps_done, self.eval_every_steps)


def _autocast(cfg: Config, device: torch.device) -> contextlib.AbstractContextManager:
    if cfg.train.amp == AmpMode.off:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if cfg.train.amp == AmpMode.bf16 else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def synchronized_clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the work queued on ``device`` has finished (CUDA kernels run
    asynchronously: a clock read without this would time their launch, not their execution)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def platform_facts() -> dict[str, Any]:
    """What a CPU result depends on beyond the config: the torch build, this worker's threads and
    the CPU instruction set its kernels use (float sums differ across them in the last bits)."""
    return {
        "platform/torch": torch.__version__,
        "platform/threads_per_worker": torch.get_num_threads(),
        "platform/cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def train(cfg: Config, comm: Comm, sink: MetricSink, checkpoint_dir: Path | None = None) -> Record:
    """Train as the worker that owns ``comm`` (its rank, the number of workers and its device); rank 0
    sends records to ``sink`` and saves the final global model to ``checkpoint_dir``'s
    ``final_model.pt`` (an ordinary state dict of the plain network). Returns the summary.

    Randomness is derived from ``cfg.seed``, never drawn from torch's global generator: model
    initialisation (then rank 0's weights are broadcast), data order (per the sharding mode) and
    augmentation (per sample). So evaluation, which builds models too, cannot change training.
    Deterministic on CPU for a given torch build, thread count and CPU.
    """
    device = comm.device
    data = sources.load(cfg.dataset, cfg.seed)
    spec, init_seed = ARCHITECTURES[cfg.model.arch], derive_seed(cfg.seed, "init")
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format

    def make_model(held_blocks=None, initialize=True):  # the protocol decides which blocks this worker holds
        model = build_model(
            spec,
            data.num_classes,
            in_channels=data.in_channels,
            batchnorm=cfg.model.batchnorm,
            held_blocks=held_blocks,
            device=device,
            init_seed=init_seed if initialize else None,
        )
        return model.to(memory_format=memory_format)

    protocol = build_protocol(cfg, comm)
    stream = BatchStream(
        data.train,
        batch_size=cfg.train.batch_size,
        num_workers=comm.size,
        rank=comm.rank,
        seed=cfg.seed,
        mode=cfg.dataset.sharding,
        loader_workers=cfg.dataset.loader_workers,
        device=device,
    )
    plan = StepPlan.from_config(cfg, stream.steps_per_epoch, protocol.steps_per_round)
    module, optimizer = _trainable(protocol.setup(make_model, stream.steps_per_epoch), cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp == AmpMode.fp16)
    reporter = Reporter(comm, sink)
    global_params = count_parameters(build_model(spec, data.num_classes, in_channels=data.in_channels, device="meta"))
    reporter.start(
        {
            "total_steps": plan.total_steps,
            "steps_per_epoch": plan.steps_per_epoch,
            "steps_per_round": plan.steps_per_round,
            "num_rounds": plan.num_rounds,
            "num_workers": comm.size,
            "protocol": protocol.name,
            "model/params": global_params,
            "data": data.description,
            **platform_facts(),
        }
    )

    last_eval: Record = {}
    evaluated: torch.nn.Module | None = None
    round_start = synchronized_clock(device)
    for step in range(plan.total_steps):
        steps_done = step + 1
        if step % plan.steps_per_round == 0:
            comm.ledger.start_round(step // plan.steps_per_round)
        images, labels = next(stream)
        if cfg.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        lr = lr_at(step, plan.total_steps, cfg.optim)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        with _autocast(cfg, device):
            logits = module(images)
            loss = F.cross_entropy(logits, labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        reporter.add_batch(loss.detach(), logits.detach(), labels)
        if not plan.ends_round(steps_done):
            continue

        held = held_bytes(module, optimizer)  # before a sync that may reset the optimizer state
        sync_start = synchronized_clock(device)
        replacement = protocol.end_round(optimizer, last_round=steps_done == plan.total_steps)
        if replacement is not None:  # e.g. ResIST leaving its local-SGD warm-up
            module, optimizer = _trainable(replacement, cfg)
        sync_end = synchronized_clock(device)
        reporter.add_seconds(compute_s=sync_start - round_start, sync_s=sync_end - sync_start)
        epoch = steps_done / plan.steps_per_epoch
        evaluation, eval_seconds = None, 0.0
        if plan.evaluates_after(steps_done):
            evaluated = protocol.eval_model()
            evaluation = evaluate(evaluated, data.test, cfg.train.eval_batch_size, comm, cfg.dataset.loader_workers)
            eval_seconds, last_eval = synchronized_clock(device) - sync_end, evaluation
            if steps_done < plan.total_steps:
                evaluated = None  # the global model exists only while it is evaluated
        if evaluation is not None or plan.logs_after(steps_done):
            reporter.report(steps_done, epoch, lr, peak_memory_bytes(device), held, evaluation, eval_seconds)
        round_start = synchronized_clock(device)
    if checkpoint_dir is not None and comm.rank == 0 and evaluated is not None:
        save_inference_checkpoint(
            evaluated, RunDir(checkpoint_dir).final_model, num_classes=data.num_classes, in_channels=data.in_channels
        )
    return reporter.summary(
        plan.total_steps, plan.total_steps / plan.steps_per_epoch, last_eval, final_model=protocol.final_model
    )


def _trainable(module: torch.nn.Module, cfg: Config) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The module to run (compiled when asked) and a fresh SGD optimizer over its parameters."""
    optimizer = torch.optim.SGD(
        module.parameters(),
        lr=cfg.optim.lr,
        momentum=cfg.optim.momentum,
        weight_decay=cfg.optim.weight_decay,
        nesterov=cfg.optim.nesterov,
    )
    module.train()
    return (torch.compile(module) if cfg.train.compile else module), optimizer
