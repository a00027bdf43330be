"""ResIST: each round, every worker trains its own shallow sub-ResNet; then shared layers are
averaged and each partitioned block travels point-to-point straight to its next holder(s).

The partitioned *blocks* are the units of the model's layout (:mod:`resist.models.layout`): the
non-first blocks of one stage, or of several equally long stages (ResNet-18's), each named by its
unit number. A worker allocates only its sub-network: the shared layers plus one slot per
partitioned block it holds. Slots of one stage are interchangeable, so a sub-network keeps its
modules from round to round while it holds as many blocks of each stage; when its count in some
stage changes (possible only when several stages are partitioned) it is rebuilt at the round end
and the loop gives it a new optimizer. No process group is created per block or per round: blocks
move with :meth:`Comm.exchange` (batched send/receive, one bucket per peer).

At a round end (after l local steps):

1. shared layers: one bucketed all-reduce mean over all workers (``train_sync``);
2. blocks (``handoff``): the next round's assignment is drawn (same on every rank, from
   ``(seed, round)``). A block held by k > 1 workers is averaged at its *aggregator* — a worker
   that holds it now and next round if there is one, else its lowest-ranked holder — which receives
   the other k − 1 copies; the aggregator then sends the block to every next holder but itself. A
   block that stays with its only holder moves zero bytes;
3. optimizer state is reset (the paper), or its momentum buffers travel with their block (billed;
   a parameter without a buffer, e.g. after a round whose steps were all skipped, sends zeros, so
   a bucket's layout depends on the model alone).

With ``protocol.compress`` the shared layers are averaged by their encoded changes, and so are a
co-held block's copies at its aggregator (each holder sends its change since the block's
round-start *anchor*); delivery to next holders is float32 (:mod:`resist.protocols.compressed`).

With ``outer_optimizer=nesterov`` each round's outcome is DiLoCo's outer step from the round's start
(:mod:`resist.protocols.outer`): the shared layers' on every worker, a block's at its aggregator (or
only holder) from the round-start value its holders keep; the block's outer momentum travels with
it (float32, billed to ``handoff``). A worker keeps two more copies of what it holds (round starts,
outer momenta), never the whole model. A local-SGD warm-up is not combined with it.

After the last round, blocks are not handed to next holders (there is no next round): a block with
several holders is averaged and returned to its co-holders, every other block stays where it is.

Evaluation assembles the global model (every block, partitioned residual branches scaled by
``max(1/S, m/n)``, as the family scales them) on each worker only while it evaluates; the missing
blocks are billed to ``eval``.
With ``warmup_epochs``, the run starts as local SGD on the whole model and switches to sub-ResNets
at the first round end after the warm-up; the optimizer state of the warm-up is not carried into
the sub-ResNets (the loop builds a new optimizer for them).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resist.comm import Comm, Purpose
from resist.config import OptimizerStatePolicy, OuterOptimizerName, ResISTConfig
from resist.decomposition import POLICIES, Assignment, eval_residual_scale
from resist.decomposition.transfers import hand_off_plan
from resist.generators import generator
from resist.models.layout import UnitLayout
from resist.models.residual_units import ResidualUnits
from resist.protocols.base import ModelFactory, TrainingProtocol, build_replica, copy_common_state, model_state_tensors
from resist.protocols.block_transfers import assemble_global_model, send_blocks
from resist.protocols.compressed import average_changes_at_aggregators, workers_codec
from resist.protocols.outer import OuterNesterov, RoundAveraging


class ResIST(TrainingProtocol):
    name = "resist"

    def __init__(self, comm: Comm, cfg: ResISTConfig, *, layout: UnitLayout, seed: int) -> None:
        """ResIST for the worker that owns ``comm``, on a network of ``layout``; partitions are
        drawn from ``seed``."""
        super().__init__(comm)
        self.local_steps = cfg.local_steps
        self.layout = layout
        self.partitioned = layout.partitioned_units(cfg.decomposition.stage)
        stages = list(layout.by_stage(self.partitioned))
        self.carry_optimizer_state = cfg.optimizer_state == OptimizerStatePolicy.keep
        if self.carry_optimizer_state and len(stages) > 1:  # (validation refuses it with a one-line error)
            raise ValueError(
                "optimizer_state=keep with several stages partitioned: a rebuilt sub-network loses momentum"
            )
        self.policy = POLICIES[cfg.decomposition.policy]
        self.min_depth, self.seed = cfg.decomposition.min_depth, seed
        self.warmup_epochs = cfg.warmup_epochs
        self.scale = (
            eval_residual_scale(comm.size, self.min_depth, len(self.partitioned)) if cfg.test_time_scaling else 1.0
        )
        self.final_model = (
            f"shared layers averaged over all {comm.size} workers; each partitioned block of stage(s) "
            f"{', '.join(map(str, stages))} averaged over its holders of the last round, its residual branch "
            f"scaled by {self.scale:g}"
        )
        self.round = 0
        self.current: Assignment | None = None  # this round's assignment; None during the warm-up
        self.codec = workers_codec(comm, cfg.compress)
        self.outer = None
        if cfg.outer_optimizer == OuterOptimizerName.nesterov:
            if self.warmup_epochs:  # (validation refuses it with a one-line error)
                raise ValueError("outer_optimizer=nesterov with a local-SGD warm-up is not supported")
            self.outer = OuterNesterov(cfg.outer_lr, cfg.outer_momentum)
        self.averaging = RoundAveraging(comm, self.codec, seed=seed, outer=self.outer)  # the shared layers
        # round-start values of the held blocks an outer step or an encoded gather measures changes from
        self.anchors: dict[int, list[torch.Tensor]] = {}
        self.outer_momenta: dict[int, list[torch.Tensor]] = {}  # with the outer optimizer: the held blocks'

    # -- set-up and the switch from the warm-up --------------------------------------------------

    def assignment(self, round_index: int) -> Assignment:
        return self.policy(
            self.partitioned,
            num_workers=self.comm.size,
            min_depth=self.min_depth,
            seed=self.seed,
            round_index=round_index,
        )

    def setup(self, make_model: ModelFactory, steps_per_epoch: int, state: dict[str, Any] | None = None) -> nn.Module:
        self.make_model = make_model
        self.shapes = make_model(None, initialize=False, meta=True)  # every block's shapes; allocates nothing
        self.warmup_rounds = -(-self.warmup_epochs * steps_per_epoch // self.local_steps)  # (rounds it begins)
        offset = 0  # a checkpoint saved when blocks were numbered within their (one) stage: to unit numbers
        if state is not None and "units" not in state:
            offset = self.layout.unit(min(self.layout.by_stage(self.partitioned)), 0)
        if state is not None:  # a checkpoint's round and assignment (its weights are loaded after)
            self.round = state["round"]
            blocks = state["assignment"]
            self.current = (
                None if blocks is None else Assignment(tuple(tuple(b + offset for b in held) for held in blocks))
            )
        elif self.warmup_rounds == 0:
            self.current = self.assignment(0)
        # The warm-up trains (and agrees on) the whole model; sub-ResNets have only the shared layers in common.
        held = None if self.current is None else self._held_blocks(self.current)
        common = model_state_tensors if self.current is None else self._shared_tensors
        self.model = build_replica(make_model, self.comm, restoring=state is not None, held_blocks=held, agreed=common)
        if state is None:
            self._start_averaging_from(self.model, common(self.model))
            if self.current is not None:
                self._anchor_blocks(None)
                if self.outer is not None:
                    self.outer_momenta = {b: self._zero_momenta(b) for b in self.current.blocks[self.comm.rank]}
        elif self.averaging.kept is not None:
            self.averaging.kept.load_state_dict(state["averaging"])
            self.anchors = {int(b) + offset: values for b, values in state["block_anchors"].items()}
            self.outer_momenta = {int(b): values for b, values in state.get("outer_momenta", {}).items()}
        return self.model

    def _start_averaging_from(self, model: nn.Module, tensors: list[torch.Tensor]) -> None:
        """``tensors``: ``model``'s tensors to average (its parameters first), as every worker holds them now."""
        held = {id(t) for t in tensors}
        self.averaging.start_from(tensors, parameters=sum(id(p) in held for p in model.parameters()))

    def _average(self, tensors: list[torch.Tensor]) -> None:
        self.averaging.synchronize(tensors, round_index=self.round, purpose=Purpose.train_sync)

    def _zero_momenta(self, unit: int) -> list[torch.Tensor]:
        """Outer momenta of block ``unit`` before any outer step: zeros shaped as its parameters."""
        parameters = self._block(self.shapes, unit).parameters()
        return [torch.zeros(p.shape, dtype=p.dtype, device=self.comm.device) for p in parameters]

    def _held_blocks(self, assignment: Assignment) -> dict[int, list[int]]:
        """What this worker's sub-network holds of the partitioned stages: their shared blocks and
        its own."""
        return self.layout.held_blocks(self.partitioned, assignment.blocks[self.comm.rank])

    def _block(self, model: nn.Module, unit: int) -> nn.Module:
        """The module of partitioned block ``unit`` in ``model``."""
        assert isinstance(model, ResidualUnits)
        return model.block(*self.layout.locate(unit))

    def _shared_tensors(self, model: nn.Module) -> list[torch.Tensor]:
        """``model``'s parameters and floating-point buffers outside the partitioned blocks it holds."""
        assert isinstance(model, ResidualUnits)
        held = [
            model.block(stage, b)
            for stage, blocks in self.layout.by_stage(self.partitioned).items()
            for b in set(blocks) & set(model.held_block_ids(stage))
        ]
        own = {id(t) for block in held for t in model_state_tensors(block)}
        return [t for t in model_state_tensors(model) if id(t) not in own]

    def _switch_to_sub_network(self) -> nn.Module:
        """End of the warm-up: keep the shared layers and this worker's blocks; drop the rest."""
        full = self.model
        self.current = self.assignment(self.round)
        sub = self.make_model(self._held_blocks(self.current), initialize=False)
        copy_common_state(sub, full)
        self.model = sub
        return sub

    def state_dict(self) -> dict[str, Any]:
        """The round count, the current assignment (None during the warm-up) and, with compression or
        the outer optimizer, the averaging's state, the held blocks' anchors and outer momenta."""
        blocks = None if self.current is None else [list(b) for b in self.current.blocks]
        state: dict[str, Any] = {"round": self.round, "assignment": blocks, "units": True}
        if self.averaging.kept is not None:
            state["averaging"] = self.averaging.kept.state_dict()
            state["block_anchors"] = self.anchors
            state["outer_momenta"] = self.outer_momenta
        return state

    def held_state_bytes(self) -> int:
        """The averaging's state (round starts, outer momenta, residual) and the held blocks' anchors
        and outer momenta."""
        kept = [t for tensors in [*self.anchors.values(), *self.outer_momenta.values()] for t in tensors]
        return self.averaging.held_bytes() + sum(t.numel() * t.element_size() for t in kept)

    # -- the round end --------------------------------------------------------------------------

    def end_round(self, optimizer: torch.optim.Optimizer, last_round: bool = False) -> nn.Module | None:
        self.round += 1
        if self.round <= self.warmup_rounds:  # local SGD on the whole model
            self._average(model_state_tensors(self.model))
            if not self.carry_optimizer_state:
                optimizer.state.clear()
            if self.round == self.warmup_rounds and not last_round:
                sub = self._switch_to_sub_network()
                self._start_averaging_from(sub, self._shared_tensors(sub))
                self._anchor_blocks(None)
                return sub
            return None
        assert self.current is not None
        following = self.current if last_round else self.assignment(self.round)
        self._average(self._shared_tensors(self.model))
        with torch.no_grad():
            rebuilt = self._hand_off(following, optimizer)
        if not self.carry_optimizer_state:
            optimizer.state.clear()
        return rebuilt

    def _block_tensors(self, block: nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
        """What travels with ``block``: its parameters and buffers, then (``optimizer_state=keep`` with
        momentum) one momentum buffer per parameter. A missing buffer is created as zeros, which SGD
        (no dampening) treats as it treats a missing one, so every bucket's layout depends on the model
        alone."""
        tensors = model_state_tensors(block)
        if self.carry_optimizer_state and optimizer.defaults.get("momentum", 0) > 0:
            for p in block.parameters():
                state = optimizer.state[p]
                if state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                tensors.append(state["momentum_buffer"])
        return tensors

    def _anchor_blocks(self, optimizer: torch.optim.Optimizer | None) -> None:
        """Keep the round-start value of each block whose change this round will be measured: every
        held block with the outer optimizer, else with a codec each block this worker holds with
        others (what its holders' encoded changes are measured from). ``optimizer`` None: a fresh
        optimizer, so no momentum; an anchor shorter than the block's tensors stands for zeros in
        the rest."""
        if self.codec is None and self.outer is None:
            return
        assert self.current is not None
        rank, current = self.comm.rank, self.current

        def values(block: nn.Module) -> list[torch.Tensor]:
            return model_state_tensors(block) if optimizer is None else self._block_tensors(block, optimizer)

        measured = [b for b in current.blocks[rank] if self.outer is not None or len(current.holders(b)) > 1]
        self.anchors = {b: [t.detach().clone() for t in values(self._block(self.model, b))] for b in measured}

    def _stage_counts(self, assignment: Assignment) -> dict[int, int]:
        """How many partitioned blocks of each stage this worker holds under ``assignment`` (stages
        where it holds none left out)."""
        return {s: len(blocks) for s, blocks in self.layout.by_stage(assignment.blocks[self.comm.rank]).items()}

    def _hand_off(self, following: Assignment, optimizer: torch.optim.Optimizer) -> nn.Module | None:
        """Execute the :func:`hand_off_plan` from ``self.current`` to ``following``; returns the
        rebuilt sub-network when this worker's block count in some stage changes, else None."""
        rank, current = self.comm.rank, self.current
        assert current is not None
        plan = hand_off_plan(current, following, self.partitioned)

        def tensors(block: int) -> list[torch.Tensor]:
            return self._block_tensors(self._block(self.model, block), optimizer)

        def travelling(block: int) -> list[torch.Tensor]:  # what a delivery carries: tensors(block), outer momenta
            return [*tensors(block), *self.outer_momenta.get(block, [])]

        def fresh(block: int, outer: bool = False) -> list[torch.Tensor]:  # shaped as tensors(block) (+ momenta)
            meta = self._block(self.shapes, block)
            momentum = self.carry_optimizer_state and optimizer.defaults.get("momentum", 0) > 0
            outer_momenta = outer and self.outer is not None
            like = [
                *model_state_tensors(meta),
                *(meta.parameters() if momentum else ()),
                *(meta.parameters() if outer_momenta else ()),
            ]
            return [torch.empty(t.shape, dtype=t.dtype, device=self.comm.device) for t in like]

        # 1. Copies of blocks with several holders meet at their aggregator, which averages them.
        if self.codec is None:
            inbox = send_blocks(self.comm, plan.gather, tensors=tensors, fresh=fresh)
            for b in {b for _, b in inbox}:
                copies = [inbox[(peer, b)] for peer in current.holders(b) if peer != rank]
                for k, tensor in enumerate(tensors(b)):
                    tensor.add_(sum(c[k] for c in copies)).div_(len(copies) + 1)
        else:
            average_changes_at_aggregators(
                self.comm,
                self.codec,
                plan.gather,
                current=current,
                tensors=tensors,
                anchors=self.anchors,
                generator=generator(self.seed, "handoff", self.round, rank),
            )

        # With the outer optimizer, each aggregator (or only holder) steps its blocks from their round start.
        if self.outer is not None:
            for b in (b for b in current.blocks[rank] if plan.aggregators[b] == rank):
                momenta = self.outer_momenta[b]
                self.outer.apply(tensors(b)[: len(momenta)], self.anchors[b], momenta)

        # 2. Each aggregator sends its block (float32) to every next holder but itself.
        delivered = send_blocks(self.comm, plan.deliver, tensors=travelling, fresh=lambda b: fresh(b, outer=True))
        arrivals = {b: values for (_, b), values in delivered.items()}
        # Fill the slots in the next round's order: kept blocks from their slots, the rest from arrivals.
        kept = {b: [t.clone() for t in travelling(b)] for b in plan.kept(rank)}
        rebuilt = None
        if self._stage_counts(following) != self._stage_counts(current):  # other slots: a new sub-network
            rebuilt = self.make_model(self._held_blocks(following), initialize=False)
            copy_common_state(rebuilt, self.model)
            self.model = rebuilt
        else:
            model = self.model
            assert isinstance(model, ResidualUnits)
            for stage, held in self._held_blocks(following).items():
                model.stage_slots(stage).assign(held)
        momenta: dict[int, list[torch.Tensor]] = {}
        for b in following.blocks[rank]:
            values, targets = kept[b] if b in kept else arrivals[b], tensors(b)
            for target, value in zip(targets, values[: len(targets)], strict=True):
                target.copy_(value)
            if self.outer is not None:
                momenta[b] = values[len(targets) :]
        self.outer_momenta = momenta
        self.current = following
        self._anchor_blocks(None if rebuilt is not None else optimizer)
        return rebuilt

    # -- evaluation -------------------------------------------------------------------------------

    def eval_model(self) -> nn.Module:
        if self.current is None:  # warm-up: every worker holds the whole (averaged) model
            return self.model
        full = self.make_model(None, initialize=False)
        assemble_global_model(full, self.model, self.comm, current=self.current, scale=self.scale)
        return full
