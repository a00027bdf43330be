"""The expected-bytes model of the protocols: the wire bytes per round per worker a config's protocol
sends, from the config alone, without training.

Models are built on the meta device (no memory, no initialisation), so this takes seconds even for
the paper's PreActResNet-101. Bytes are the cost model's modeled wire bytes (:mod:`resist.comm.cost`)
of exactly the tensors the protocols communicate (parameters and floating-point buffers); ResIST's
hand-off bytes come from the run's own assignments (:func:`hand_off_plan` of rounds 1 to
:data:`ROUNDS_AVERAGED`), so they follow its policy, seed and minimum depth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from torch import nn

from resist.comm.codecs import Codec, compressed_all_reduce_wire_bytes
from resist.comm.cost import Op, powersgd_sizes, wire_bytes
from resist.config import (
    Config,
    DatasetName,
    DDPConfig,
    DiLoCoConfig,
    GradientCompression,
    LocalSGDConfig,
    OptimizerStatePolicy,
    OuterOptimizerName,
    ProtocolConfig,
    ResISTConfig,
    image_size,
)
from resist.decomposition import POLICIES, Assignment, site_sizes
from resist.decomposition.transfers import hand_off_plan
from resist.models.catalog import layout_of
from resist.models.residual_units import ResidualUnits
from resist.models.zoo import build_network
from resist.protocols.base import model_state_tensors
from resist.protocols.compressed import codec_for

ROUNDS_AVERAGED = 2000
_CLASSES = {DatasetName.digits: 10, DatasetName.cifar10: 10, DatasetName.cifar100: 100, DatasetName.imagenet: 1000}

P = TypeVar("P", bound=ProtocolConfig)


def protocol_config(cfg: Config, kind: type[P]) -> P:
    """``cfg.protocol`` as a ``kind`` config; a protocol of another kind is a ValueError."""
    if not isinstance(cfg.protocol, kind):
        raise ValueError(f"protocol {cfg.protocol.name.value}: not a {kind.__name__}")
    return cfg.protocol


def classes_and_channels(cfg: Config) -> tuple[int, int]:
    """The number of classes and of input channels of ``cfg``'s dataset (an image folder's classes
    are its ``train`` subfolders; 10 without one)."""
    dataset = cfg.dataset
    if dataset.name == DatasetName.synthetic:
        return dataset.num_classes or 10, dataset.channels
    if dataset.name == DatasetName.imagefolder:
        train = Path(dataset.root or "") / "train"
        return (sum(1 for d in train.iterdir() if d.is_dir()) if train.is_dir() else 10), 3
    return _CLASSES[dataset.name], 1 if dataset.name == DatasetName.digits else 3


def _state_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model_state_tensors(module))


class ModelShapes:
    """The run's network on the meta device and the sizes the protocols move: ``total``,
    ``shared`` and ``block`` (per partitioned block, by unit number) bytes of parameters and
    floating-point buffers, ``params`` and ``block_params`` bytes of parameters only,
    ``parameters`` (a count) and ``parameter_shapes``; the network's ``layout``, its partitioned
    ``blocks`` (unit numbers, :mod:`resist.models.layout`) and their ``stages``."""

    def __init__(self, cfg: Config) -> None:
        num_classes, channels = classes_and_channels(cfg)
        self.layout = layout_of(cfg.model.arch)
        model = build_network(
            cfg.model, num_classes, in_channels=channels, image_size=image_size(cfg.dataset), device="meta"
        )
        assert isinstance(model, ResidualUnits)
        self.total = _state_bytes(model)
        self.parameters = sum(p.numel() for p in model.parameters())
        self.parameter_shapes = [tuple(p.shape) for p in model.parameters()]
        self.params = sum(p.numel() * p.element_size() for p in model.parameters())
        stage = cfg.protocol.decomposition.stage if isinstance(cfg.protocol, ResISTConfig) else None
        self.blocks = self.layout.partitioned_units(stage)
        self.stages = tuple(self.layout.by_stage(self.blocks))
        modules = {u: model.block(*self.layout.locate(u)) for u in self.blocks}
        self.block = {u: _state_bytes(m) for u, m in modules.items()}
        self.block_params = {u: sum(p.numel() * p.element_size() for p in m.parameters()) for u, m in modules.items()}
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


def resist_assignments(cfg: Config, shapes: ModelShapes) -> Callable[[int], Assignment]:
    """The assignment of ``shapes.blocks`` to ``cfg``'s workers in a round (0-based), as the ResIST
    protocol's policy, minimum depth and seed deal it."""
    decomposition = protocol_config(cfg, ResISTConfig).decomposition
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


def resist_handoffs(cfg: Config, shapes: ModelShapes) -> Callable[[int], float]:
    """ResIST's hand-off bytes per worker at the end of a round (0-based): each block that moves from
    that round's holders to the next round's (with its momentum when the optimizer state is kept,
    and its outer momentum with the outer optimizer), delivered in float32 (a next holder has no
    value a change could be added to), co-held blocks' changes (and kept momentum) gathered encoded
    as ``protocol.compress`` says."""
    workers, protocol = cfg.num_workers, protocol_config(cfg, ResISTConfig)
    assignment = resist_assignments(cfg, shapes)
    carries = protocol.optimizer_state == OptimizerStatePolicy.keep and cfg.optim.momentum > 0
    outer = protocol.outer_optimizer != OuterOptimizerName.none
    codec = codec_for(protocol.compress) if workers > 1 else None
    averaged = {b: size + (shapes.block_params[b] if carries else 0) for b, size in shapes.block.items()}
    gathered = {b: _sent(codec, size) for b, size in averaged.items()}
    delivered = {b: size + (shapes.block_params[b] if outer else 0) for b, size in averaged.items()}

    def handoff(round_index: int) -> float:
        plan = hand_off_plan(assignment(round_index), assignment(round_index + 1), shapes.blocks)
        sent = sum(gathered[b] for blocks in plan.gather.values() for b in blocks) + sum(
            delivered[b] for blocks in plan.deliver.values() for b in blocks
        )
        return sent / workers

    return handoff


def _shared_wire_bytes(cfg: Config, shapes: ModelShapes) -> float:
    """ResIST's shared layers averaged, per worker and round."""
    codec = codec_for(protocol_config(cfg, ResISTConfig).compress) if cfg.num_workers > 1 else None
    return averaged_wire_bytes(codec, shapes.shared, cfg.num_workers)


def resist_expectation(cfg: Config, shapes: ModelShapes) -> ResistExpectation:
    """ResIST's wire bytes per round per worker: the shared layers averaged, and the hand-off
    (:func:`resist_handoffs`), its expectation over the run's random partitions."""
    workers, protocol = cfg.num_workers, protocol_config(cfg, ResISTConfig)
    decomposition = protocol.decomposition
    handoff = resist_handoffs(cfg, shapes)
    mean = sum(handoff(r) for r in range(ROUNDS_AVERAGED)) / ROUNDS_AVERAGED
    shared = _shared_wire_bytes(cfg, shapes)
    if decomposition.policy == "paper" and decomposition.min_depth == 0:
        # Each round deals a fresh permutation in chunks of fixed sizes s_w: a block stays with its
        # holder with probability sum_w (s_w / n)^2, independently of the round before.
        carries = protocol.optimizer_state == OptimizerStatePolicy.keep and cfg.optim.momentum > 0
        momenta = int(carries) + int(protocol.outer_optimizer != OuterOptimizerName.none)
        delivered = sum(size + momenta * shapes.block_params[b] for b, size in shapes.block.items())
        sizes, n = site_sizes(len(shapes.blocks), workers, 0), len(shapes.blocks)
        moves = 1 - sum((size / n) ** 2 for size in sizes)
        how = (
            f"expectation: a block changes holder with probability {moves:.4f}; "
            f"rounds 1-{ROUNDS_AVERAGED}: {mean / 1e6:,.1f} MB"
        )
        return ResistExpectation(shared, moves * delivered / workers, how)
    return ResistExpectation(shared, mean, f"mean over rounds 1-{ROUNDS_AVERAGED} of this run's assignments")


def resist_window_wire_bytes(cfg: Config, rounds: Sequence[int]) -> float:
    """ResIST's wire bytes per round per worker over ``rounds`` (0-based), each with the hand-off at
    its end, from those rounds' own partitions: what a benchmark that measures them sends, to the
    byte (the expectation differs from it by the partitions' randomness only)."""
    shapes = ModelShapes(cfg)
    handoff = resist_handoffs(cfg, shapes)
    return _shared_wire_bytes(cfg, shapes) + sum(handoff(r) for r in rounds) / len(rounds)


def _sent(codec: Codec | None, float32_bytes: int) -> int:
    """Bytes a point-to-point transfer of ``float32_bytes`` of values sends, encoded by ``codec``."""
    return float32_bytes if codec is None else codec.encoded_bytes(float32_bytes // 4)


def averaged_wire_bytes(codec: Codec | None, float32_bytes: int, workers: int) -> float:
    """Wire bytes per worker of averaging ``float32_bytes`` of values: a ring all-reduce, or the
    compressed reduce-scatter and all-gather of the encoded changes."""
    if codec is None:
        return wire_bytes(Op.all_reduce, float32_bytes, workers)
    return compressed_all_reduce_wire_bytes(codec, float32_bytes // 4, workers)


def ddp_step_wire_bytes(cfg: Config, shapes: ModelShapes, step: int) -> float:
    """Wire bytes per worker of DDP's gradient all-reduces in optimizer step ``step`` (0-based):
    float32 or bf16 gradients, or with PowerSGD from its start step on the uncompressed tensors and
    the factors of :func:`powersgd_sizes` (float32), and at every step DDP's used-parameter map (an
    int32 per parameter tensor), each ring all-reduced."""
    protocol, workers = protocol_config(cfg, DDPConfig), cfg.num_workers
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
    """The cost model's wire bytes per round per worker of ``cfg``'s protocol: local SGD's (and
    DiLoCo's) averaging of the whole model (a ring all-reduce, or the compressed exchange of
    ``protocol.compress``), ResIST's :class:`ResistExpectation` total, or DDP's gradient
    all-reduces per step (a round), the mean over ``rounds`` (0-based steps; default: a step from
    PowerSGD's start step on). A protocol without rounds (``none``) is a ValueError."""
    shapes, protocol = ModelShapes(cfg), cfg.protocol
    if isinstance(protocol, ResISTConfig):
        return resist_expectation(cfg, shapes).total
    if isinstance(protocol, LocalSGDConfig | DiLoCoConfig):
        return averaged_wire_bytes(codec_for(protocol.compress), shapes.total, cfg.num_workers)
    if isinstance(protocol, DDPConfig):
        start = protocol.powersgd_start_step
        steps = [start] if rounds is None else list(rounds)
        compressing = sum(step >= start for step in steps)  # the steps' bytes take only two values
        before, after = ddp_step_wire_bytes(cfg, shapes, start - 1), ddp_step_wire_bytes(cfg, shapes, start)
        return ((len(steps) - compressing) * before + compressing * after) / len(steps)
    raise ValueError(f"expected_wire_bytes: no round model for protocol {protocol.name.value}")
