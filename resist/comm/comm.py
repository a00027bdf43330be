"""``Comm``: the one door to the network. Every collective and point-to-point transfer of the project
goes through it, and each is recorded in its :class:`Ledger`.

A ``Comm`` wraps a torch.distributed ``ProcessGroup`` — the default group of a process started by
the local launcher, torchrun or SLURM (NCCL on GPUs, gloo on CPU), or a gloo group of a thread
worker in the in-process backend (:mod:`resist.comm.backends`). Operations take lists of tensors and
move them as one flat bucket (per dtype), in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist

from resist.comm.codecs import Codec, alignment, shard_bounds
from resist.comm.cost import Op, wire_bytes
from resist.comm.ledger import Ledger, LedgerEntry, Purpose


def payload_bytes(tensors: Sequence[torch.Tensor]) -> int:
    """``Σ numel × element size`` over ``tensors``."""
    return sum(t.numel() * t.element_size() for t in tensors)


def _buckets(tensors: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Group tensors by dtype (one flat bucket each), keeping their order within a dtype."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for tensor in tensors:
        by_dtype.setdefault(tensor.dtype, []).append(tensor)
    return list(by_dtype.values())


def flat_copy(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """A new 1-D tensor holding ``tensors`` back to back (never a view of them)."""
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def unflatten(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Views of ``flat`` shaped as the tensors of ``like``, in order (inverse of :func:`flat_copy`)."""
    return [part.view_as(t) for part, t in zip(flat.split([t.numel() for t in like]), like, strict=True)]


class Comm:
    """Collectives and point-to-point transfers among ``size`` ranks, each billed to a purpose.

    Each entry is tagged with the round of :attr:`ledger` (the training loop sets it through
    :meth:`Ledger.start_round`).
    """

    def __init__(
        self,
        group: dist.ProcessGroup | dist.Backend,
        *,
        rank: int,
        size: int,
        device: torch.device,
        process_group: dist.ProcessGroup | None = None,
    ) -> None:
        """``group``: what the operations run on (a ProcessGroup, or a backend such as
        ``ProcessGroupGloo``: both expose the collectives and send/receive). ``process_group``: the
        full ProcessGroup over the same ranks, for APIs that need one (DDP); default ``group``."""
        self.group, self.rank, self.size, self.device = group, rank, size, device
        self.process_group = group if process_group is None else process_group
        self.ledger = Ledger()

    # -- bookkeeping ------------------------------------------------------------------------

    def _check_device(self, op: str, tensors: Sequence[torch.Tensor]) -> None:
        """NCCL moves only tensors on the rank's own GPU (gloo would take CPU tensors anywhere): a
        tensor elsewhere is an error here, on every backend, rather than a hang on a cluster."""
        for tensor in tensors:
            if tensor.device != self.device:
                raise ValueError(
                    f"Comm.{op}: a tensor on {tensor.device} given to rank {self.rank}, whose device is {self.device}"
                )

    def _bill(
        self,
        op: Op,
        purpose: Purpose,
        *,
        payload: int,
        seconds: float,
        group_size: int | None = None,
        peer: int | None = None,
        root: int | None = None,
    ) -> None:
        """Record one operation: ``payload`` bytes, in a group of ``group_size`` (default: all ranks);
        ``root``: a broadcast's or reduce's root rank."""
        size = self.size if group_size is None else group_size
        position = 0 if root is None else (self.rank - root) % size
        self.ledger.record(
            LedgerEntry(
                op=op,
                purpose=purpose,
                payload_bytes=payload,
                wire_bytes=wire_bytes(op, payload, size, position=position),
                group_size=size,
                peer=peer,
                round=self.ledger.round,
                seconds=seconds,
            )
        )

    def _wait(self, works: Sequence[dist.Work]) -> None:
        for work in works:
            work.wait()
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()

    def _flat_collective(
        self,
        tensors: Sequence[torch.Tensor],
        run: Callable[[torch.Tensor], dist.Work],
        finish: Callable[[torch.Tensor], None] | None = None,
    ) -> float:
        """Run ``run`` on one flat buffer per dtype bucket, copy results back; return seconds."""
        start = time.perf_counter()
        self._check_device("collective", tensors)
        flats, buckets = [], _buckets(tensors)
        works = []
        for bucket in buckets:
            flat = flat_copy(bucket)
            flats.append(flat)
            works.append(run(flat))
        self._wait(works)
        for flat, bucket in zip(flats, buckets, strict=True):
            if finish is not None:
                finish(flat)
            for tensor, result in zip(bucket, unflatten(flat, bucket), strict=True):
                tensor.detach().copy_(result)
        return time.perf_counter() - start

    # -- collectives --------------------------------------------------------------------------

    def all_reduce(self, tensors: Sequence[torch.Tensor], purpose: Purpose, average: bool = True) -> None:
        """Sum (or average) ``tensors`` over all ranks, in place."""
        if not tensors:
            return
        opts = dist.AllreduceOptions()
        opts.reduceOp = dist.ReduceOp.SUM
        seconds = self._flat_collective(
            tensors,
            lambda flat: self.group.allreduce([flat], opts),
            (lambda flat: flat.div_(self.size)) if average else None,
        )
        self._bill(Op.all_reduce, purpose, payload=payload_bytes(tensors), seconds=seconds)

    def broadcast(self, tensors: Sequence[torch.Tensor], src: int, purpose: Purpose) -> None:
        """Overwrite ``tensors`` on every rank with rank ``src``'s values."""
        if not tensors:
            return
        opts = dist.BroadcastOptions()
        opts.rootRank = src
        seconds = self._flat_collective(tensors, lambda flat: self.group.broadcast([flat], opts))
        self._bill(Op.broadcast, purpose, payload=payload_bytes(tensors), seconds=seconds, peer=src, root=src)

    def reduce(self, tensors: Sequence[torch.Tensor], *, dst: int, purpose: Purpose, average: bool = True) -> None:
        """Sum (or average) ``tensors`` onto rank ``dst``; other ranks' tensors are left as they were."""
        if not tensors:
            return
        opts = dist.ReduceOptions()
        opts.reduceOp, opts.rootRank = dist.ReduceOp.SUM, dst
        if self.rank == dst:
            finish = (lambda flat: flat.div_(self.size)) if average else None
            seconds = self._flat_collective(tensors, lambda flat: self.group.reduce([flat], opts), finish)
        else:  # gloo may use the buffer as scratch: reduce a copy so our tensors stay untouched
            start = time.perf_counter()
            self._check_device("reduce", tensors)
            copies = [flat_copy(bucket) for bucket in _buckets(tensors)]
            self._wait([self.group.reduce([flat], opts) for flat in copies])
            seconds = time.perf_counter() - start
        self._bill(Op.reduce, purpose, payload=payload_bytes(tensors), seconds=seconds, peer=dst, root=dst)

    def all_gather(self, tensor: torch.Tensor, purpose: Purpose) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (same shape and dtype on all ranks), in rank order."""
        start = time.perf_counter()
        self._check_device("all_gather", [tensor])
        outputs = [torch.empty_like(tensor) for _ in range(self.size)]
        self._wait([self.group.allgather([outputs], [tensor.contiguous()])])
        self._bill(Op.all_gather, purpose, payload=payload_bytes([tensor]), seconds=time.perf_counter() - start)
        return outputs

    def exchange(
        self,
        sends: Sequence[tuple[int, Sequence[torch.Tensor]]],
        recvs: Sequence[tuple[int, Sequence[torch.Tensor]]],
        purpose: Purpose,
    ) -> None:
        """Batched point-to-point: send each ``(peer, tensors)`` of ``sends`` as one flat bucket and
        receive each ``(peer, tensors)`` of ``recvs`` into the given tensors.

        Every send must be matched by the peer's receive of tensors with the same shapes and dtype;
        the tensors for one peer share one dtype (a ValueError otherwise).
        All transfers are issued as one ``batch_isend_irecv`` call — one NCCL group — so ranks that
        send to each other cannot deadlock: NCCL runs ungrouped point-to-point operations in issue
        order, and two ranks that each send before they receive would wait for each other forever.
        A payload is billed once, to its sender (a receive is recorded with zero bytes); the
        exchange's duration is billed once too, to its first entry.
        """
        start = time.perf_counter()
        self._check_device("exchange", [t for _, tensors in [*sends, *recvs] for t in tensors])
        for peer, tensors in [*sends, *recvs]:
            dtypes = sorted({str(t.dtype) for t in tensors})
            if len(dtypes) > 1:  # one flat bucket per peer: mixed tensors would be cast to the first's dtype
                raise ValueError(
                    f"Comm.exchange: the tensors for peer {peer} mix dtypes ({', '.join(dtypes)}); one "
                    "bucket per peer carries one dtype (exchange each dtype separately)"
                )
        operations, inbound = [], []
        for peer, tensors in sends:
            operations.append(dist.P2POp(dist.isend, flat_copy(tensors), group=self.group, group_peer=peer))
        for peer, tensors in recvs:
            flat = torch.empty(sum(t.numel() for t in tensors), dtype=tensors[0].dtype, device=tensors[0].device)
            operations.append(dist.P2POp(dist.irecv, flat, group=self.group, group_peer=peer))
            inbound.append((flat, tensors))
        if operations:
            self._wait(dist.batch_isend_irecv(operations))
        for flat, tensors in inbound:
            for tensor, result in zip(tensors, unflatten(flat, tensors), strict=True):
                tensor.detach().copy_(result)
        seconds = time.perf_counter() - start
        for peer, tensors in sends:  # the exchange's duration is billed once, to its first entry
            self._bill(Op.send, purpose, payload=payload_bytes(tensors), seconds=seconds, group_size=2, peer=peer)
            seconds = 0.0
        for peer, _ in recvs:
            self._bill(Op.recv, purpose, payload=0, seconds=seconds, group_size=2, peer=peer)
            seconds = 0.0

    def all_reduce_compressed(
        self,
        tensors: Sequence[torch.Tensor],
        purpose: Purpose,
        *,
        codec: Codec,
        generator: torch.Generator | None,
        residual: torch.Tensor | None = None,
    ) -> None:
        """Average float32 ``tensors`` over all ranks in place, sending only ``codec``-encoded
        shards (torchft's scheme for quantized all-reduces):

        1. reduce-scatter: the flat values are cut into one shard per rank (:func:`shard_bounds`,
           chunk-aligned); each rank encodes every other rank's shard and sends it to that rank,
           which decodes what it receives and adds it to its own values (in rank order);
        2. all-gather: each rank encodes its shard's mean and sends it to every other rank.

        Every rank decodes the same bytes for every shard (its own included), so all hold identical
        results. Each rank sends its encodings of the S − 1 shards it does not own and S − 1 copies
        of its own: over all ranks, 2(S − 1) × the encoded size of the whole payload, as a ring
        all-reduce's 2(S − 1)/S per rank. ``generator`` feeds stochastic rounding (the same draws on
        a resumed run when it is derived from the run's seed and round). Billed as the exchanges'
        point-to-point sends of encoded bytes, scales included.

        ``residual`` (error feedback; a flat float32 tensor of all the values, updated in place): it
        is added to this rank's values before they are encoded, and afterwards holds what the
        encoding lost: on the shards this rank sends in step 1, its values minus their decoding; on
        its own shard, S × (the mean minus its decoding). So, shard by shard, S × the result + the sum
        of all ranks' new residuals = the sum of all ranks' values and old residuals: nothing an
        encoding drops is lost, it is sent in a later call."""
        if not tensors:
            return
        if any(t.dtype != torch.float32 for t in tensors):
            raise ValueError("Comm.all_reduce_compressed: float32 tensors only")
        flat = flat_copy(tensors)
        if residual is not None:
            flat += residual
        bounds = shard_bounds(flat.numel(), self.size, alignment(codec))
        mine = bounds[self.rank]
        own_numel = mine[1] - mine[0]
        others = [peer for peer in range(self.size) if peer != self.rank]

        def shard(peer: int, values: torch.Tensor = flat) -> torch.Tensor:
            begin, end = bounds[peer]
            return values[begin:end]

        def inbox(numel: int) -> torch.Tensor:
            return torch.empty(codec.encoded_bytes(numel), dtype=torch.uint8, device=flat.device)

        def keep_error(peer: int, encoded: torch.Tensor, sent: torch.Tensor, *, weight: int = 1) -> None:
            if residual is not None:
                shard(peer, residual).copy_((sent - codec.decode(encoded, sent.numel())) * weight)

        # 1. reduce-scatter: encoded shards to their owners
        outgoing = [(peer, [codec.encode(shard(peer), generator)]) for peer in others if shard(peer).numel()]
        for peer, (encoded,) in outgoing:
            keep_error(peer, encoded, shard(peer))
        incoming = [(peer, [inbox(own_numel)]) for peer in others] if own_numel else []
        self.exchange(outgoing, incoming, purpose)
        total = shard(self.rank).clone()
        for _, (data,) in incoming:
            total += codec.decode(data, own_numel)
        # 2. all-gather: the encoded mean of each shard to every other rank
        encoded = codec.encode(total / self.size, generator) if own_numel else None
        if encoded is not None:
            keep_error(self.rank, encoded, total / self.size, weight=self.size)
        outgoing = [(peer, [encoded]) for peer in others] if encoded is not None else []
        incoming = [(peer, [inbox(shard(peer).numel())]) for peer in others if shard(peer).numel()]
        self.exchange(outgoing, incoming, purpose)
        received = {peer: data for peer, (data,) in incoming}
        if encoded is not None:
            received[self.rank] = encoded
        for peer, data in received.items():
            shard(peer).copy_(codec.decode(data, shard(peer).numel()))
        for tensor, result in zip(tensors, unflatten(flat, tensors), strict=True):
            tensor.detach().copy_(result)

    def barrier(self) -> None:
        """Wait for every rank (moves no payload; not billed)."""
        self._wait([self.group.barrier()])

    def record_all_reduces(self, payloads: Sequence[int], purpose: Purpose, *, seconds: float) -> None:
        """Bill all-reduces that torch's DDP communication hooks ran on this Comm's group
        (:mod:`resist.comm.gradient_hooks`): ``payloads`` are each one's bytes, in issue order; their
        ``seconds`` (issue to completion) are billed once, to the first."""
        for payload in payloads:
            self._bill(Op.all_reduce, purpose, payload=payload, seconds=seconds)
            seconds = 0.0
