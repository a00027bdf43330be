"""``dry_run=true``: what a run would do, printed from the config and the expected-bytes model
(:mod:`resist.protocols.expected_bytes`), without training: the resolved config, the first
assignments, the expected wire bytes per round per worker, the bytes held per worker, and for SLURM
the sbatch plan.
"""

from __future__ import annotations

import dataclasses
import json

from resist.analysis.units import megabytes
from resist.comm.cost import Op, powersgd_sizes, wire_bytes
from resist.config import (
    Compression,
    Config,
    DatasetConfig,
    DatasetName,
    DDPConfig,
    DiLoCoConfig,
    GradientCompression,
    LauncherName,
    OuterOptimizerName,
    ProtocolName,
    ResISTConfig,
)
from resist.config.hydra_door import resolved_config_text
from resist.launch.slurm_plan import slurm_plan
from resist.models.catalog import built_for_small_images
from resist.protocols.compressed import codec_for
from resist.protocols.expected_bytes import (
    ModelShapes,
    averaged_wire_bytes,
    classes_and_channels,
    ddp_step_wire_bytes,
    protocol_config,
    resist_assignments,
    resist_expectation,
)


def _mb(value: float) -> str:
    return f"{value:,.0f} B = {megabytes(value)}"


def _resist_lines(cfg: Config, shapes: ModelShapes, local_sgd: float) -> list[str]:
    """The first rounds' assignments, ResIST's expected bytes per round per worker and what the
    largest sub-network holds."""
    assignment = resist_assignments(cfg, shapes)
    expected = resist_expectation(cfg, shapes)
    compress = protocol_config(cfg, ResISTConfig).compress
    averaging = "ring all-reduce" if compress == Compression.none else "encoded changes"
    held = shapes.shared + max(sum(shapes.block[b] for b in own) for own in assignment(0).blocks)
    factor = 2 if cfg.optim.momentum > 0 else 1
    return [
        "resist assignments of the first rounds (partitioned blocks per worker, by unit number):",
        *(f"  round {r}: " + json.dumps([list(b) for b in assignment(r).blocks]) for r in range(3)),
        f"  resist: {_mb(expected.total)} per round per worker, "
        f"{expected.total / local_sgd:.3f} of float32 local SGD's",
        f"    shared layers ({averaging}): {_mb(expected.shared)}",
        f"    block hand-off: {_mb(expected.handoff)} ({expected.how})",
        f"  held by the largest sub-network (weights{' + momentum' if factor == 2 else ''}): {_mb(held * factor)}",
        *_outer_lines(cfg, 2 * held),
    ]


def _outer_lines(cfg: Config, kept_bytes: int) -> list[str]:
    """What the outer optimizer keeps beside the model (DiLoCo, ResIST with one): the round's start
    of every tensor held and an outer momentum of each parameter, ``kept_bytes`` at most."""
    protocol = cfg.protocol
    outer = getattr(protocol, "outer_optimizer", None) == OuterOptimizerName.nesterov
    if not (isinstance(protocol, DiLoCoConfig) or outer):
        return []
    return [
        f"  outer optimizer (Nesterov, lr {protocol.outer_lr:g}, momentum {protocol.outer_momentum:g}; "  # type: ignore[attr-defined]
        f"held beside the model: the round's start and the outer momenta): up to {_mb(kept_bytes)}"
    ]


def _ddp_lines(cfg: Config, shapes: ModelShapes) -> list[str]:
    """DDP's gradient bytes per step, and with PowerSGD what it sends from its start step on."""
    protocol = protocol_config(cfg, DDPConfig)
    float32 = wire_bytes(Op.all_reduce, shapes.params, cfg.num_workers)
    if protocol.compress == GradientCompression.none:
        return [f"  ddp (gradients, every step): {_mb(float32)}"]
    if protocol.compress == GradientCompression.bf16:
        bf16 = ddp_step_wire_bytes(cfg, shapes, 0)
        return [f"  ddp with compress=bf16 (gradients, every step): {_mb(bf16)}, {bf16 / float32:.3f} of float32's"]
    sizes = powersgd_sizes(shapes.parameter_shapes, protocol.powersgd_rank)
    compressed = ddp_step_wire_bytes(cfg, shapes, protocol.powersgd_start_step)
    return [
        f"  ddp, steps before {protocol.powersgd_start_step} (float32 gradients; with PowerSGD also DDP's "
        f"used-parameter map, 4 B per parameter tensor): {_mb(ddp_step_wire_bytes(cfg, shapes, 0))}",
        f"  ddp with compress=powersgd, rank {protocol.powersgd_rank}, from step {protocol.powersgd_start_step} on: "
        f"{_mb(compressed)}, {compressed / float32:.4f} of float32's ({sizes.uncompressed:,} values uncompressed, "
        f"factors P {sizes.p:,} and Q {sizes.q:,})",
    ]


def _paper_input_note(cfg: Config, shapes: ModelShapes, local_sgd: float) -> list[str]:
    """For a CIFAR network sized on another dataset (the default digits: 1 channel), local SGD's
    bytes on CIFAR-10 input (3 channels, 10 classes), which differ in the stem and the head."""
    small = built_for_small_images(cfg.model.arch, cifar_stem=cfg.model.cifar_stem)
    if not small or cfg.dataset.name in (DatasetName.cifar10, DatasetName.cifar100):
        return []
    on_cifar = dataclasses.replace(cfg, dataset=DatasetConfig(name=DatasetName.cifar10))
    paper = wire_bytes(Op.all_reduce, ModelShapes(on_cifar).total, cfg.num_workers)
    if paper == local_sgd:
        return []
    classes, channels = classes_and_channels(cfg)
    return [
        f"    (with dataset {cfg.dataset.name.value}: {channels} input channel(s), {classes} classes; "
        f"with dataset=cifar10, 3 channels and 10 classes: {_mb(paper)})"
    ]


def dry_run_report(cfg: Config) -> str:
    """The resolved config, the first assignments, expected wire bytes per round per worker (the
    chosen protocol's and local SGD's), bytes held per worker, and for SLURM the sbatch plan."""
    shapes, workers = ModelShapes(cfg), cfg.num_workers
    local_sgd = wire_bytes(Op.all_reduce, shapes.total, workers)
    factor = 2 if cfg.optim.momentum > 0 else 1
    lines = [
        "dry run: nothing is trained, no run directory is kept",
        "config:",
        *("  " + line for line in resolved_config_text(cfg).splitlines()),
        f"model {cfg.model.arch}: {shapes.parameters:,} parameters; {len(shapes.blocks)} partitionable blocks "
        f"in stage(s) {', '.join(map(str, shapes.stages))} (unit numbers {', '.join(map(str, shapes.blocks))}); "
        f"{workers} workers",
        "expected wire bytes per round per worker (cost model):",
        f"  local SGD (whole model, ring all-reduce): {_mb(local_sgd)}",
        *_paper_input_note(cfg, shapes, local_sgd),
    ]
    compress = getattr(cfg.protocol, "compress", Compression.none)
    if compress != Compression.none and cfg.protocol.name != ProtocolName.ddp:
        compressed = averaged_wire_bytes(codec_for(compress), shapes.total, workers)
        lines.append(
            f"  local SGD with compress={compress.value} (encoded changes): {_mb(compressed)}, "
            f"{compressed / local_sgd:.3f} of float32's"
        )
    if cfg.protocol.name == ProtocolName.resist and workers > 1:
        lines += _resist_lines(cfg, shapes, local_sgd)
    elif cfg.protocol.name == ProtocolName.diloco:
        lines.append("  diloco: local SGD's bytes (it averages the changes since the round's start, not the values)")
        lines += _outer_lines(cfg, shapes.total + shapes.params)
    elif cfg.protocol.name == ProtocolName.ddp:
        lines += _ddp_lines(cfg, shapes)
    lines.append(
        f"  held by a whole model (weights{' + momentum' if factor == 2 else ''}): {_mb(shapes.params * factor)}"
    )
    if cfg.launcher.name == LauncherName.slurm:
        from resist.launch.slurm import sbatch_preview

        lines.append("sbatch plan (submitit parameters): " + json.dumps(slurm_plan(cfg), sort_keys=True))
        lines.append(sbatch_preview(cfg))
    return "\n".join(lines)
