"""Building a run on one worker: its data, protocol and trainable module, batch stream, step plan
and reporter, ready for the loop (:mod:`resist.train.loop`) to train."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from resist.checkpoints import Checkpoint
from resist.comm import Comm
from resist.config import AmpMode, Config, OptimConfig
from resist.data import sources
from resist.data.batches import BatchStream
from resist.data.sources import DataSplits
from resist.logging import MetricSink
from resist.models.preact import build_model, count_parameters
from resist.models.spec import ARCHITECTURES
from resist.protocols import build_protocol
from resist.protocols.base import TrainingProtocol
from resist.seeding import derive_seed
from resist.train.plan import StepPlan
from resist.train.platform import platform_changes, platform_facts
from resist.train.report import Reporter
from resist.train.state import restore_worker_state, saved_schedule


@dataclass
class Run:
    """Everything one worker trains with. ``module`` and ``optimizer`` change when the protocol
    replaces the module (ResIST leaving its warm-up). ``platform`` is what its results depend on
    beyond the config (:func:`platform_facts`). A resumed run starts at ``start_step`` with the
    checkpoint's last evaluation; ``checkpoint`` is the newest one saved or resumed from."""

    cfg: Config
    comm: Comm
    data: DataSplits
    protocol: TrainingProtocol
    stream: BatchStream
    plan: StepPlan
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    reporter: Reporter
    scaler: torch.amp.GradScaler
    platform: dict[str, Any]
    start_step: int = 0
    last_eval: dict[str, float] = field(default_factory=dict)
    checkpoint: Checkpoint | None = None


def build_run(cfg: Config, comm: Comm, sink: MetricSink, *, resume: Checkpoint | None = None) -> Run:
    """Build the run for the worker that owns ``comm`` and write its ``start`` record (rank 0, to
    ``sink``). Initial weights come from a seed derived from ``cfg.seed``; the protocol shares rank 0's.
    With ``resume``, the worker's state is the checkpoint's shard instead (no communication) and the
    record is a ``resume`` record: where it continues, its length before and now, its learning-rate
    schedule's horizon (the checkpoint's: an extended finished run keeps its schedule), this host's
    platform facts and whether it continues bit for bit (``bitwise``: the device type and platform
    facts the result depends on are the checkpoint's; ``platform_changes`` lists those that are not)."""
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
    plan = StepPlan.from_config(
        cfg.train, steps_per_epoch=stream.steps_per_epoch, steps_per_round=protocol.steps_per_round
    )
    shard = None if resume is None else resume.load_shard(comm.rank, device)
    module = protocol.setup(make_model, stream.steps_per_epoch, None if shard is None else shard["protocol"])
    module, optimizer = trainable(module, cfg.optim, compile=cfg.train.compile)
    reporter = Reporter(comm, sink)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp == AmpMode.fp16)
    platform = platform_facts(device)
    run = Run(cfg, comm, data, protocol, stream, plan, module, optimizer, reporter, scaler, platform)
    if shard is not None and resume is not None:
        restore_worker_state(run, shard)
        run.start_step, run.last_eval, run.checkpoint = shard["step"], shard["last_eval"], resume
        saved_total, schedule_steps = saved_schedule(resume, plan.total_steps)
        run.plan = dataclasses.replace(plan, schedule_steps=schedule_steps)
        changes = platform_changes(resume.manifest.get("platform", {}), platform)
        reporter.resumed(
            {
                "step": resume.step,
                "checkpoint": str(resume.directory),
                "total_steps": plan.total_steps,
                "previous_total_steps": saved_total,
                "schedule_steps": schedule_steps,
                **platform,
                "bitwise": not changes,
                "platform_changes": changes,
            }
        )
        return run
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
            **platform,
        }
    )
    return run


def trainable(
    module: torch.nn.Module, optim: OptimConfig, *, compile: bool
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The module to run (``torch.compile``-d when ``compile``) and a fresh SGD optimizer over its
    parameters."""
    optimizer = torch.optim.SGD(
        module.parameters(),
        lr=optim.lr,
        momentum=optim.momentum,
        weight_decay=optim.weight_decay,
        nesterov=optim.nesterov,
    )
    module.train()
    return (torch.compile(module) if compile else module), optimizer
