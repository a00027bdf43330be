"""``dry_run=true``: what a run would do, from the config and the cost model, without training.

Models are built on the meta device (no memory, no initialisation), so this takes seconds even for
the paper's PreActResNet-101. Bytes are the cost model's modeled wire bytes (:mod:`resist.comm.cost`)
of exactly the tensors the protocols communicate (parameters and floating-point buffers); ResIST's
hand-off bytes come from this run's own assignments (:func:`hand_off_plan` of rounds 1 to
:data:`ROUNDS_AVERAGED`), so they follow its policy, seed and minimum depth.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from resist.comm.codecs import Codec, compressed_all_reduce_wire_bytes
from resist.comm.cost import Op, powersgd_sizes, wire_bytes
from resist.config import (
    Compression,
    Config,
    DatasetConfig,
    DatasetName,
    DDPConfig,
    GradientCompression,
    LauncherName,
    OptimizerStatePolicy,
    ProtocolName,
    plain,
)
from resist.decomposition import POLICIES, Assignment, site_sizes
from resist.decomposition.plan import hand_off_plan
from resist.launch.slurm_plan import slurm_plan
from resist.models.preact import build_model
from resist.models.spec import ARCHITECTURES, Stem
from resist.protocols.base import model_state_tensors
from resist.protocols.compressed import codec_for

ROUNDS_AVERAGED = 2000
_CLASSES = {DatasetName.digits: 10, DatasetName.cifar10: 10, DatasetName.cifar100: 100, DatasetName.imagenet: 1000}


def _classes_and_channels(cfg: Config) -> tuple[int, int]:
    dataset = cfg.dataset
    if dataset.name == DatasetName.synthetic:
        return dataset.num_classes or 10, dataset.channels
    if dataset.name == DatasetName.imagefolder:
        train = Path(dataset.root or "") / "train"
        return (sum(1 for d in train.iterdir() if d.is_dir()) if train.is_dir() else 10), 3
    return _CLASSES[dataset.name], 1 if dataset.name == DatasetName.digits else 3


def _bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model_state_tensors(module))


def _mb(value: float) -> str:
    return f"{value:,.0f} B = {value / 1e6:,.1f} MB"


class _Shapes:
    """The run's network on the meta device and the byte sizes the protocols move."""

    def __init__(self, cfg: Config) -> None:
        num_classes, channels = _classes_and_channels(cfg)
        self.spec = ARCHITECTURES[cfg.model.arch]
        model = build_model(self.spec, num_classes, in_channels=channels, batchnorm=cfg.model.batchnorm, device="meta")
        self.total = _bytes(model)
        self.parameters = sum(p.numel() for p in model.parameters())
        self.parameter_shapes = [tuple(p.shape) for p in model.parameters()]
        self.params = sum(p.numel() * p.element_size() for p in model.parameters())
        decomposition = getattr(cfg.protocol, "decomposition", None)
        stage = decomposition.stage if decomposition is not None else None
        self.stage = self.spec.default_partition_stage if stage is None else stage
        self.blocks = self.spec.partitionable_blocks(self.stage)
        self.block = {b: _bytes(model.block(self.stage, b)) for b in self.blocks}
        self.block_params = {
            b: sum(p.numel() * p.element_size() for p in model.block(self.stage, b).parameters()) for b in self.blocks
        }
        self.shared = self.total - sum(self.block.values())


@dataclasses.dataclass(frozen=True)
class ResistExpectation:
    """The cost model's ResIST wire bytes per round per worker: the shared layers' ring all-reduce
    and the block hand-off (``how`` says whether it is an exact expectation or a mean over rounds)."""

    shared: float
    handoff: float
    how: str

    @property
    def total(self) -> float:
        return self.shared + self.handoff


def _assignments(cfg: Config, shapes: _Shapes):
    decomposition = cfg.protocol.decomposition  # type: ignore[attr-defined]
    policy = POLICIES[decomposition.policy]

    def assignment(round_index: int) -> Assignment:
        return policy(
            shapes.blocks,
            num_workers=cfg.num_workers,
            min_depth=decomposition.min_depth,
            seed=cfg.seed,
            round_index=round_index,
        )

    return assignment


def _expectation(cfg: Config, shapes: _Shapes) -> ResistExpectation:
    workers, protocol = cfg.num_workers, cfg.protocol
    decomposition = protocol.decomposition  # type: ignore[attr-defined]
    assignment = _assignments(cfg, shapes)
    carries = protocol.optimizer_state == OptimizerStatePolicy.keep and cfg.optim.momentum > 0  # type: ignore[attr-defined]
    codec = codec_for(protocol.compress) if workers > 1 else None  # type: ignore[attr-defined]
    # a block's values (parameters and buffers) and, carried, one momentum buffer per parameter
    # (delivered in float32: a next holder has no value a change could be added to)
    delivered = {b: size + (shapes.block_params[b] if carries else 0) for b, size in shapes.block.items()}
    gathered = {b: _sent(codec, size) for b, size in delivered.items()}  # encoded changes, with a codec
    handoffs = []
    for round_index in range(1, ROUNDS_AVERAGED + 1):
        plan = hand_off_plan(assignment(round_index - 1), assignment(round_index), shapes.blocks)
        sent = sum(gathered[b] for blocks in plan.gather.values() for b in blocks) + sum(
            delivered[b] for blocks in plan.deliver.values() for b in blocks
        )
        handoffs.append(sent / workers)
    shared = _averaged(codec, shapes.shared, workers)
    mean = sum(handoffs) / len(handoffs)
    if decomposition.policy == "paper" and decomposition.min_depth == 0:
        # Each round deals a fresh permutation in chunks of fixed sizes s_w: a block stays with its
        # holder with probability sum_w (s_w / n)^2, independently of the round before.
        sizes, n = site_sizes(len(shapes.blocks), workers, 0), len(shapes.blocks)
        moves = 1 - sum((size / n) ** 2 for size in sizes)
        how = (
            f"expectation: a block changes holder with probability {moves:.4f}; "
            f"rounds 1-{ROUNDS_AVERAGED}: {mean / 1e6:,.1f} MB"
        )
        return ResistExpectation(shared, moves * sum(delivered.values()) / workers, how)
    return ResistExpectation(shared, mean, f"mean over rounds 1-{ROUNDS_AVERAGED} of this run's assignments")


def _sent(codec: Codec | None, float32_bytes: int) -> int:
    """Bytes a point-to-point transfer of ``float32_bytes`` of values sends, encoded by ``codec``."""
    return float32_bytes if codec is None else codec.encoded_bytes(float32_bytes // 4)


def _averaged(codec: Codec | None, float32_bytes: int, workers: int) -> float:
    """Wire bytes per worker of averaging ``float32_bytes`` of values: a ring all-reduce, or the
    compressed reduce-scatter and all-gather of the encoded changes."""
    if codec is None:
        return wire_bytes(Op.all_reduce, float32_bytes, workers)
    return compressed_all_reduce_wire_bytes(codec, float32_bytes // 4, workers)


def _ddp_step(cfg: Config, shapes: _Shapes, step: int) -> float:
    """Wire bytes per worker of DDP's gradient all-reduces in optimizer step ``step`` (0-based):
    float32 or bf16 gradients, or with PowerSGD from its start step on the uncompressed tensors and
    the factors of :func:`powersgd_sizes` (float32), and at every step DDP's used-parameter map (an
    int32 per parameter tensor), each ring all-reduced."""
    protocol, workers = cfg.protocol, cfg.num_workers
    assert isinstance(protocol, DDPConfig)
    if protocol.compress == GradientCompression.bf16:
        return wire_bytes(Op.all_reduce, 2 * shapes.parameters, workers)
    if protocol.compress != GradientCompression.powersgd:
        return wire_bytes(Op.all_reduce, shapes.params, workers)
    used_map = 4 * len(shapes.parameter_shapes)  # DDP's own all-reduce under find_unused_parameters
    if step < protocol.powersgd_start_step:
        return wire_bytes(Op.all_reduce, shapes.params + used_map, workers)
    sizes = powersgd_sizes(shapes.parameter_shapes, protocol.powersgd_rank)
    return wire_bytes(Op.all_reduce, 4 * sizes.total + used_map, workers)


def expected_wire_bytes(cfg: Config, rounds: Sequence[int] | None = None) -> float:
    """The cost model's wire bytes per round per worker of ``cfg``'s protocol: local SGD's
    averaging of the whole model (a ring all-reduce, or the compressed exchange of
    ``protocol.compress``), ResIST's :class:`ResistExpectation` total, or DDP's gradient
    all-reduces per step (a round), the mean over ``rounds`` (0-based steps; default: a step from
    PowerSGD's start step on)."""
    shapes = _Shapes(cfg)
    if cfg.protocol.name == ProtocolName.resist:
        return _expectation(cfg, shapes).total
    if cfg.protocol.name == ProtocolName.local_sgd:
        return _averaged(codec_for(cfg.protocol.compress), shapes.total, cfg.num_workers)  # type: ignore[attr-defined]
    if cfg.protocol.name == ProtocolName.ddp:
        start = cfg.protocol.powersgd_start_step  # type: ignore[attr-defined]
        steps = [start] if rounds is None else list(rounds)
        compressing = sum(step >= start for step in steps)  # the steps' bytes take only two values
        before, after = _ddp_step(cfg, shapes, start - 1), _ddp_step(cfg, shapes, start)
        return ((len(steps) - compressing) * before + compressing * after) / len(steps)
    raise ValueError(f"expected_wire_bytes: no round model for protocol {cfg.protocol.name.value}")


def _resist_lines(cfg: Config, shapes: _Shapes, local_sgd: float) -> list[str]:
    """The first rounds' assignments, ResIST's expected bytes per round per worker and what the
    largest sub-network holds."""
    assignment = _assignments(cfg, shapes)
    expected = _expectation(cfg, shapes)
    held = shapes.shared + max(sum(shapes.block[b] for b in own) for own in assignment(0).blocks)
    factor = 2 if cfg.optim.momentum > 0 else 1
    return [
        "resist assignments of the first rounds (partitionable blocks per worker):",
        *(f"  round {r}: " + json.dumps([list(b) for b in assignment(r).blocks]) for r in range(3)),
        f"  resist: {_mb(expected.total)} per round per worker, "
        f"{expected.total / local_sgd:.3f} of float32 local SGD's",
        f"    shared layers ({'ring all-reduce' if cfg.protocol.compress == Compression.none else 'encoded changes'}): "  # type: ignore[attr-defined]
        f"{_mb(expected.shared)}",
        f"    block hand-off: {_mb(expected.handoff)} ({expected.how})",
        f"  held by the largest sub-network (weights{' + momentum' if factor == 2 else ''}): {_mb(held * factor)}",
    ]


def _ddp_lines(cfg: Config, shapes: _Shapes) -> list[str]:
    """DDP's gradient bytes per step, and with PowerSGD what it sends from its start step on."""
    protocol = cfg.protocol
    assert isinstance(protocol, DDPConfig)
    float32 = wire_bytes(Op.all_reduce, shapes.params, cfg.num_workers)
    if protocol.compress == GradientCompression.none:
        return [f"  ddp (gradients, every step): {_mb(float32)}"]
    if protocol.compress == GradientCompression.bf16:
        bf16 = _ddp_step(cfg, shapes, 0)
        return [f"  ddp with compress=bf16 (gradients, every step): {_mb(bf16)}, {bf16 / float32:.3f} of float32's"]
    sizes = powersgd_sizes(shapes.parameter_shapes, protocol.powersgd_rank)
    compressed = _ddp_step(cfg, shapes, protocol.powersgd_start_step)
    return [
        f"  ddp, steps before {protocol.powersgd_start_step} (float32 gradients; with PowerSGD also DDP's "
        f"used-parameter map, 4 B per parameter tensor): {_mb(_ddp_step(cfg, shapes, 0))}",
        f"  ddp with compress=powersgd, rank {protocol.powersgd_rank}, from step {protocol.powersgd_start_step} on: "
        f"{_mb(compressed)}, {compressed / float32:.4f} of float32's ({sizes.uncompressed:,} values uncompressed, "
        f"factors P {sizes.p:,} and Q {sizes.q:,})",
    ]


def _paper_input_note(cfg: Config, shapes: _Shapes, local_sgd: float) -> list[str]:
    """For a CIFAR network sized on another dataset (the default digits: 1 channel), local SGD's
    bytes on CIFAR-10 input (3 channels, 10 classes), which differ in the stem and the head."""
    if shapes.spec.stem == Stem.imagenet or cfg.dataset.name in (DatasetName.cifar10, DatasetName.cifar100):
        return []
    on_cifar = dataclasses.replace(cfg, dataset=DatasetConfig(name=DatasetName.cifar10))
    paper = wire_bytes(Op.all_reduce, _Shapes(on_cifar).total, cfg.num_workers)
    if paper == local_sgd:
        return []
    classes, channels = _classes_and_channels(cfg)
    return [
        f"    (with dataset {cfg.dataset.name.value}: {channels} input channel(s), {classes} classes; "
        f"with dataset=cifar10, 3 channels and 10 classes: {_mb(paper)})"
    ]


def dry_run_report(cfg: Config) -> str:
    """The resolved config, the first assignments, expected wire bytes per round per worker (the
    chosen protocol's and local SGD's), bytes held per worker, and for SLURM the sbatch plan."""
    shapes, workers = _Shapes(cfg), cfg.num_workers
    local_sgd = wire_bytes(Op.all_reduce, shapes.total, workers)
    factor = 2 if cfg.optim.momentum > 0 else 1
    lines = [
        "dry run: nothing is trained, no run directory is kept",
        "config: " + json.dumps(plain(cfg), sort_keys=True),
        f"model {cfg.model.arch}: {shapes.parameters:,} parameters; stage {shapes.stage} has "
        f"{len(shapes.blocks)} partitionable blocks; {workers} workers",
        "expected wire bytes per round per worker (cost model):",
        f"  local SGD (whole model, ring all-reduce): {_mb(local_sgd)}",
        *_paper_input_note(cfg, shapes, local_sgd),
    ]
    compress = getattr(cfg.protocol, "compress", Compression.none)
    if compress != Compression.none and cfg.protocol.name != ProtocolName.ddp:
        compressed = _averaged(codec_for(compress), shapes.total, workers)
        lines.append(
            f"  local SGD with compress={compress.value} (encoded changes): {_mb(compressed)}, "
            f"{compressed / local_sgd:.3f} of float32's"
        )
    if cfg.protocol.name == ProtocolName.resist and workers > 1:
        lines += _resist_lines(cfg, shapes, local_sgd)
    elif cfg.protocol.name == ProtocolName.ddp:
        lines += _ddp_lines(cfg, shapes)
    lines.append(
        f"  held by a whole model (weights{' + momentum' if factor == 2 else ''}): {_mb(shapes.params * factor)}"
    )
    if cfg.launcher.name == LauncherName.slurm:
        lines.append("sbatch plan (submitit parameters): " + json.dumps(slurm_plan(cfg), sort_keys=True))
    return "\n".join(lines)
