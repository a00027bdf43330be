"""The protocols' configuration schema (pure: stdlib only): one dataclass per ``protocol=<name>``,
each with its own keys only, and :data:`PROTOCOL_CONFIGS`, the table Hydra's ``protocol`` group is
typed by (re-exported by :mod:`resist.config.schema`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from resist.config.enums import (
    Compression,
    GradientCompression,
    OptimizerStatePolicy,
    OuterOptimizerName,
    ProtocolName,
)


@dataclass
class DecompositionConfig:
    """ResIST's decomposition. ``policy``: a name in :data:`resist.decomposition.POLICIES`; ``stage``:
    0-based index of the stage whose non-first blocks are partitioned (None: derived from the model,
    the third of four); ``min_depth``: at least this many partitioned blocks per sub-network (some
    blocks then have several holders)."""

    policy: str = "paper"
    stage: int | None = None
    min_depth: int = 0


@dataclass
class ProtocolConfig:
    """How the workers cooperate: the base of every protocol's config, each with its own keys only (a
    key of another protocol is an error when the config is composed), selected with
    ``protocol=<name>``. Itself the config of ``protocol=none``: one worker, no communication."""

    name: ProtocolName = ProtocolName.none

    @property
    def steps_per_round(self) -> int:
        """Optimizer steps between synchronisations: ``local_steps``, or 1 for protocols without it
        (the one source of a round's length; a run's :class:`resist.train.step_plan.StepPlan` uses it)."""
        return getattr(self, "local_steps", 1)


@dataclass
class DDPConfig(ProtocolConfig):
    """``protocol=ddp``: data-parallel SGD, gradients all-reduced every step (a round is one step), as
    ``compress`` says (:class:`GradientCompression`); PowerSGD approximates each weight matrix at rank
    ``powersgd_rank`` from step ``powersgd_start_step`` (>= 2: torch's; float32 before it) on."""

    name: ProtocolName = ProtocolName.ddp
    compress: GradientCompression = GradientCompression.none
    powersgd_rank: int = 2
    powersgd_start_step: int = 2


@dataclass
class LocalSGDConfig(ProtocolConfig):
    """``protocol=local_sgd``. ``local_steps``: the paper's l, optimizer steps between
    synchronisations. ``optimizer_state``: reset at each synchronisation, or keep each worker's own.
    ``paper_style``: move the partitionable blocks of ``paper_style_stage`` (None: the model's default
    partition stage) through a reduce to rank 0 and a broadcast from it, as the paper's code does,
    instead of one all-reduce (the same average; for Table-1 comparisons). ``compress``: how the
    averaged changes travel (:class:`Compression`)."""

    name: ProtocolName = ProtocolName.local_sgd
    local_steps: int = 50
    optimizer_state: OptimizerStatePolicy = OptimizerStatePolicy.reset
    paper_style: bool = False
    paper_style_stage: int | None = None
    compress: Compression = Compression.none


@dataclass
class DiLoCoConfig(ProtocolConfig):
    """``protocol=diloco`` (DiLoCo, arXiv 2311.08105): every worker trains the whole model for
    ``local_steps`` steps of the inner optimizer (``optim``), then the workers' mean change since the
    round's start (the pseudo-gradient, negated) is applied to that start by Nesterov SGD with
    ``outer_lr`` and ``outer_momentum`` (the paper's 0.7 and 0.9), identically on every worker;
    floating-point buffers (BatchNorm statistics) are averaged. ``optimizer_state``: keep each
    worker's inner state (DiLoCo) or reset it every round. ``compress``: how the changes travel
    (:class:`Compression`); the bytes are local SGD's."""

    name: ProtocolName = ProtocolName.diloco
    local_steps: int = 50
    optimizer_state: OptimizerStatePolicy = OptimizerStatePolicy.keep
    outer_lr: float = 0.7
    outer_momentum: float = 0.9
    compress: Compression = Compression.none


@dataclass
class ResISTConfig(ProtocolConfig):
    """``protocol=resist``. ``local_steps``: the paper's l. ``optimizer_state``: reset each round (the
    paper) or keep (momentum travels with its block, billed). ``warmup_epochs``: epochs of local SGD
    on the whole model before ResIST starts. ``decomposition``: how blocks are partitioned.
    ``test_time_scaling``: scale the partitioned blocks' residual branches by ``max(1/S, m/n)`` in the
    evaluated (and final) global model, as the paper; false leaves them at 1 (an ablation).
    ``compress``: how shared-layer changes and handed-off blocks travel (:class:`Compression`).
    ``outer_optimizer``: ``nesterov`` applies each round's averaged change as DiLoCo does, with
    ``outer_lr`` and ``outer_momentum``: the shared layers on every worker, each block at the worker
    that averages it, its outer momentum travelling with it (:mod:`resist.protocols.resist`)."""

    name: ProtocolName = ProtocolName.resist
    local_steps: int = 50
    optimizer_state: OptimizerStatePolicy = OptimizerStatePolicy.reset
    warmup_epochs: int = 0
    decomposition: DecompositionConfig = field(default_factory=DecompositionConfig)
    test_time_scaling: bool = True
    compress: Compression = Compression.none
    outer_optimizer: OuterOptimizerName = OuterOptimizerName.none
    outer_lr: float = 0.7
    outer_momentum: float = 0.9


PROTOCOL_CONFIGS: dict[ProtocolName, type[ProtocolConfig]] = {
    ProtocolName.none: ProtocolConfig,
    ProtocolName.ddp: DDPConfig,
    ProtocolName.local_sgd: LocalSGDConfig,
    ProtocolName.diloco: DiLoCoConfig,
    ProtocolName.resist: ResISTConfig,
}
