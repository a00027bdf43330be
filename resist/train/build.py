"""Building a run on one worker: its data, protocol and trainable module, batch stream, step plan
and reporter, ready for the loop (:mod:`resist.train.loop`) to train."""

from __future__ import annotations

import dataclasses

import torch

from resist.checkpoints import Checkpoint
from resist.comm import Comm
from resist.config import AmpMode, Config, image_size
from resist.data import sources
from resist.data.batches import BatchStream
from resist.logging import MetricSink
from resist.models.preact import count_parameters
from resist.models.zoo import build_network
from resist.protocols import build_protocol
from resist.seeding import derive_seed
from resist.train.platform import platform_changes, platform_facts
from resist.train.report import Reporter
from resist.train.run_state import Run
from resist.train.step_plan import StepPlan, saved_schedule
from resist.train.trainable import trainable


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
    init_seed = derive_seed(cfg.seed, "init")
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    pixels = image_size(cfg.dataset)

    def make_model(held_blocks=None, initialize=True, meta=False):  # the protocol decides which blocks it holds
        model = build_network(
            cfg.model,
            data.num_classes,
            in_channels=data.in_channels,
            image_size=pixels,
            held_blocks=held_blocks,
            device="meta" if meta else device,
            init_seed=init_seed if initialize and not meta else None,
        )
        return model if meta else model.to(memory_format=memory_format)

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
        cfg.train, steps_per_epoch=stream.steps_per_epoch, steps_per_round=cfg.protocol.steps_per_round
    )
    shard = None if resume is None else resume.load_shard(comm.rank, device)
    module = protocol.setup(make_model, stream.steps_per_epoch, None if shard is None else shard["protocol"])
    module, optimizer = trainable(module, cfg.optim, compile=cfg.train.compile)
    reporter = Reporter(comm, sink)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.amp == AmpMode.fp16)
    platform = platform_facts(device)
    run = Run(cfg, comm, data, protocol, stream, plan, module, optimizer, reporter, scaler, platform)
    if shard is not None and resume is not None:
        run.load_state_dict(shard)
        run.checkpoint = resume
        saved_total, schedule_steps = saved_schedule(resume.manifest, plan.total_steps)
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
    global_params = count_parameters(make_model(meta=True))
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
