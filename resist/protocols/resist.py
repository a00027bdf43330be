"""ResIST: each round, every worker trains its own shallow sub-ResNet; then shared layers are
averaged and each partitioned block travels point-to-point straight to its next holder(s).

A worker allocates only its sub-ResNet: the shared layers plus one slot per partitioned block it
holds (slot count fixed for the run). No process group is created per block or per round: blocks
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

After the last round, blocks are not handed to next holders (there is no next round): a block with
several holders is averaged and returned to its co-holders, every other block stays where it is.

Evaluation assembles the global model (every block, partitioned residual branches scaled by
``max(1/S, m/n)``) on each worker only while it evaluates; the missing blocks are billed to ``eval``.
With ``warmup_epochs``, the run starts as local SGD on the whole model and switches to sub-ResNets
at the first round end after the warm-up; the optimizer state of the warm-up is not carried into
the sub-ResNets (the loop builds a new optimizer for them).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import torch
from torch import nn

from resist.comm import Comm, Purpose
from resist.config import OptimizerStatePolicy, ResISTConfig
from resist.decomposition import POLICIES, Assignment, eval_residual_scale
from resist.decomposition.plan import eval_gather_plan, hand_off_plan, receives_of, sends_of
from resist.generators import generator
from resist.models.preact import PreActResNet
from resist.models.spec import ARCHITECTURES
from resist.protocols.base import ModelFactory, TrainingProtocol, broadcast_initial_state, model_state_tensors
from resist.protocols.compressed import DeltaAveraging, codec_for


class ResIST(TrainingProtocol):
    name = "resist"

    def __init__(self, comm: Comm, cfg: ResISTConfig, *, arch: str, seed: int) -> None:
        """ResIST for the worker that owns ``comm``, on the network ``arch`` names; partitions are
        drawn from ``seed``."""
        super().__init__(comm)
        self.steps_per_round = cfg.local_steps
        spec = ARCHITECTURES[arch]
        self.stage = spec.default_partition_stage if cfg.decomposition.stage is None else cfg.decomposition.stage
        self.partitioned = spec.partitionable_blocks(self.stage)
        self.stage_size = spec.blocks_per_stage[self.stage]
        self.policy = POLICIES[cfg.decomposition.policy]
        self.min_depth, self.seed = cfg.decomposition.min_depth, seed
        self.carry_optimizer_state = cfg.optimizer_state == OptimizerStatePolicy.keep
        self.warmup_epochs = cfg.warmup_epochs
        self.scale = (
            eval_residual_scale(comm.size, self.min_depth, len(self.partitioned)) if cfg.test_time_scaling else 1.0
        )
        self.final_model = (
            f"shared layers averaged over all {comm.size} workers; each partitioned block of stage {self.stage} "
            f"averaged over its holders of the last round, its residual branch scaled by {self.scale:g}"
        )
        self.round = 0
        self.current: Assignment | None = None  # this round's assignment; None during the warm-up
        self.codec = codec_for(cfg.compress)
        self.averaging = None if self.codec is None else DeltaAveraging(comm, self.codec, seed=seed)

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
        self.warmup_rounds = -(-self.warmup_epochs * steps_per_epoch // self.steps_per_round)
        if state is not None:  # a checkpoint's round and assignment (its weights are loaded after)
            self.round = state["round"]
            blocks = state["assignment"]
            self.current = None if blocks is None else Assignment(tuple(tuple(b) for b in blocks))
            held = None if self.current is None else {self.stage: self._stage_blocks(self.current)}
            self.model = make_model(held, initialize=False)
            if self.averaging is not None:
                self.averaging.load_state_dict(state["averaging"])
            return self.model
        if self.warmup_rounds > 0:
            self.model = make_model()
            broadcast_initial_state(self.model, self.comm)
            self._start_averaging_from(model_state_tensors(self.model))
            return self.model
        self.current = self.assignment(0)
        self.model = make_model({self.stage: self._stage_blocks(self.current)})
        with torch.no_grad():
            self.comm.broadcast(self._shared_tensors(), src=0, purpose=Purpose.init)
        self._start_averaging_from(self._shared_tensors())
        return self.model

    def _start_averaging_from(self, tensors: list[torch.Tensor]) -> None:
        if self.averaging is not None:
            self.averaging.start_from(tensors)

    def _average(self, tensors: list[torch.Tensor]) -> None:
        """Average ``tensors`` over all workers: one all-reduce, or the compressed changes."""
        if self.averaging is not None:
            self.averaging.average(tensors, round_index=self.round, purpose=Purpose.train_sync)
        else:
            with torch.no_grad():
                self.comm.all_reduce(tensors, Purpose.train_sync)

    def _stage_blocks(self, assignment: Assignment) -> list[int]:
        """This worker's blocks of the partitioned stage: the shared ones and its own."""
        own = set(assignment.blocks[self.comm.rank])
        return sorted(set(range(self.stage_size)) - set(self.partitioned) | own)

    def _shared_tensors(self) -> list[torch.Tensor]:
        own = {id(t) for block in self._own_blocks() for t in model_state_tensors(block)}
        return [t for t in model_state_tensors(self.model) if id(t) not in own]

    def _own_blocks(self) -> list[nn.Module]:
        held = set(self.model.held_block_ids(self.stage)) & set(self.partitioned)
        return [self.model.block(self.stage, b) for b in sorted(held)]

    def _switch_to_sub_network(self) -> PreActResNet:
        """End of the warm-up: keep the shared layers and this worker's blocks; drop the rest."""
        full = self.model
        self.current = self.assignment(self.round)
        sub = self.make_model({self.stage: self._stage_blocks(self.current)}, initialize=False)
        with torch.no_grad():
            sources = [
                t for name, module in full.named_children() if name != "stages" for t in model_state_tensors(module)
            ]
            targets = [
                t for name, module in sub.named_children() if name != "stages" for t in model_state_tensors(module)
            ]
            for stage_index, stage in enumerate(sub.stages):
                for block_id in stage.block_ids:
                    sources += model_state_tensors(full.block(stage_index, block_id))
                    targets += model_state_tensors(sub.block(stage_index, block_id))
            for target, source in zip(targets, sources, strict=True):
                target.copy_(source)
        self.model = sub
        return sub

    def state_dict(self) -> dict[str, Any]:
        """The round count, the current assignment (None during the warm-up) and, with compression,
        the averaging's anchors."""
        blocks = None if self.current is None else [list(b) for b in self.current.blocks]
        state: dict[str, Any] = {"round": self.round, "assignment": blocks}
        if self.averaging is not None:
            state["averaging"] = self.averaging.state_dict()
        return state

    # -- the round end --------------------------------------------------------------------------

    def end_round(self, optimizer: torch.optim.Optimizer, last_round: bool = False) -> nn.Module | None:
        self.round += 1
        if self.round <= self.warmup_rounds:  # local SGD on the whole model
            self._average(model_state_tensors(self.model))
            if not self.carry_optimizer_state:
                optimizer.state.clear()
            if self.round == self.warmup_rounds and not last_round:
                sub = self._switch_to_sub_network()
                self._start_averaging_from(self._shared_tensors())
                return sub
            return None
        assert self.current is not None
        following = self.current if last_round else self.assignment(self.round)
        self._average(self._shared_tensors())
        with torch.no_grad():
            self._hand_off(following, optimizer)
        if not self.carry_optimizer_state:
            optimizer.state.clear()
        return None

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

    def _hand_off(self, following: Assignment, optimizer: torch.optim.Optimizer) -> None:
        """Execute the :func:`hand_off_plan` from ``self.current`` to ``following``."""
        rank, current = self.comm.rank, self.current
        assert current is not None
        plan = hand_off_plan(current, following, self.partitioned)

        def tensors(block: int) -> list[torch.Tensor]:
            return self._block_tensors(self.model.block(self.stage, block), optimizer)

        template = tensors(current.blocks[rank][0])

        def fresh() -> list[torch.Tensor]:
            return [torch.empty_like(t) for t in template]

        # 1. Copies of blocks with several holders meet at their aggregator, which averages them.
        draws = None if self.codec is None else generator(self.seed, "handoff", self.round, rank)
        inbox, _ = self._transfer(
            sends_of(plan.gather, rank), receives_of(plan.gather, rank), tensors=tensors, fresh=fresh, draws=draws
        )
        for b in {b for _, b in inbox}:
            copies = [inbox[(peer, b)] for peer in current.holders(b) if peer != rank]
            for k, tensor in enumerate(tensors(b)):
                tensor.add_(sum(c[k] for c in copies)).div_(len(copies) + 1)

        # 2. Each aggregator sends its block to every next holder but itself.
        received, sent_and_kept = self._transfer(
            sends_of(plan.deliver, rank),
            receives_of(plan.deliver, rank),
            tensors=tensors,
            fresh=fresh,
            draws=draws,
            kept=plan.kept(rank),
        )
        arrivals = {b: values for (_, b), values in received.items()}
        for b, values in sent_and_kept.items():  # a block it sends and keeps: hold what its receivers decode
            for target, value in zip(tensors(b), values, strict=True):
                target.copy_(value)
        # Fill the slots in the next round's order: kept blocks from their slots, the rest from arrivals.
        kept = {b: [t.clone() for t in tensors(b)] for b in plan.kept(rank)}
        stage = self.model.stages[self.stage]
        shared_ids = [b for b in stage.block_ids if b not in self.partitioned]
        stage.assign(sorted(shared_ids + list(following.blocks[rank])))
        for b in following.blocks[rank]:
            for target, value in zip(tensors(b), kept[b] if b in kept else arrivals[b], strict=True):
                target.copy_(value)
        self.current = following

    def _transfer(
        self,
        sends: list[tuple[int, tuple[int, ...]]],
        receives: list[tuple[int, tuple[int, ...]]],
        *,
        tensors: Callable[[int], list[torch.Tensor]],
        fresh: Callable[[], list[torch.Tensor]],
        draws: torch.Generator | None,
        kept: Collection[int] = (),
    ) -> tuple[dict[tuple[int, int], list[torch.Tensor]], dict[int, list[torch.Tensor]]]:
        """One exchange of blocks (billed to ``handoff``): send each ``(peer, blocks)`` of ``sends``
        and receive each of ``receives`` into fresh tensors. With a codec each block travels
        encoded, encoded once however many peers get it. Returns what arrived per (peer, block)
        and, with a codec, each sent block also in ``kept`` as its receivers decode it (else {})."""
        if self.codec is None:
            inbox = {(peer, b): fresh() for peer, blocks in receives for b in blocks}
            self.comm.exchange(
                [(peer, [t for b in blocks for t in tensors(b)]) for peer, blocks in sends],
                [(peer, [t for b in blocks for t in inbox[(peer, b)]]) for peer, blocks in receives],
                Purpose.handoff,
            )
            return inbox, {}
        codec, template = self.codec, fresh()
        numel = sum(t.numel() for t in template)
        encoded = {
            b: codec.encode(torch.cat([t.reshape(-1) for t in tensors(b)]), draws)
            for b in sorted({b for _, blocks in sends for b in blocks})
        }
        buffers = {
            (peer, b): torch.empty(codec.encoded_bytes(numel), dtype=torch.uint8, device=template[0].device)
            for peer, blocks in receives
            for b in blocks
        }
        self.comm.exchange(
            [(peer, [encoded[b] for b in blocks]) for peer, blocks in sends],
            [(peer, [buffers[(peer, b)] for b in blocks]) for peer, blocks in receives],
            Purpose.handoff,
        )

        def decoded(data: torch.Tensor) -> list[torch.Tensor]:
            flat = codec.decode(data, numel)
            return [
                part.view_as(t).clone()
                for part, t in zip(flat.split([t.numel() for t in template]), template, strict=True)
            ]

        received = {key: decoded(data) for key, data in buffers.items()}
        return received, {b: decoded(data) for b, data in encoded.items() if b in kept}

    # -- evaluation -------------------------------------------------------------------------------

    def eval_model(self) -> nn.Module:
        if self.current is None:  # warm-up: every worker holds the whole (averaged) model
            return self.model
        return self._assemble_global_model()

    def _assemble_global_model(self) -> PreActResNet:
        """The global model on this worker: its own blocks, the others from their lowest-ranked holder
        (billed to ``eval``), partitioned residual branches scaled by ``max(1/S, m/n)``."""
        rank, current = self.comm.rank, self.current
        assert current is not None
        full = self.make_model(None, initialize=False)
        with torch.no_grad():
            for (name, target), source in zip(full.named_children(), self.model.children(), strict=True):
                if name != "stages":
                    for t, s in zip(model_state_tensors(target), model_state_tensors(source), strict=True):
                        t.copy_(s)
            for stage_index, stage in enumerate(self.model.stages):
                for block_id in stage.block_ids:
                    for t, s in zip(
                        model_state_tensors(full.block(stage_index, block_id)),
                        model_state_tensors(self.model.block(stage_index, block_id)),
                        strict=True,
                    ):
                        t.copy_(s)
            plan = eval_gather_plan(current, self.partitioned)

            def tensors(blocks: tuple[int, ...]) -> list[torch.Tensor]:
                return [t for b in blocks for t in model_state_tensors(full.block(self.stage, b))]

            self.comm.exchange(
                [(peer, tensors(blocks)) for peer, blocks in sends_of(plan, rank)],
                [(peer, tensors(blocks)) for peer, blocks in receives_of(plan, rank)],
                Purpose.eval,
            )
        full.set_residual_scale(self.stage, self.partitioned, self.scale)
        return full
