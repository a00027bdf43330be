"""A process group that models NCCL's point-to-point semantics for thread workers.

Nothing here has several GPUs, so NCCL itself cannot run in tests; this group stands in for it
where its semantics differ from gloo's and can hang a job:

* each rank runs its point-to-point operations one at a time, in issue order (NCCL puts them on
  one stream);
* a send completes only once the peer is running the matching receive (a rendezvous: NCCL's
  behaviour above its eager-message size, NVIDIA/nccl#479);
* the operations issued inside one coalescing group (``torch.distributed.batch_isend_irecv``, which
  opens one for a backend that ``supports_coalescing``) run together, as one unit.

So two ranks that each issue an ungrouped send to the other before their receive wait for each
other forever — reported here as a timeout naming the stuck operations — while the same transfers
issued as one batch complete. Messages between a pair of ranks match in issue order.

Collectives are delegated to a gloo group of the same ranks (their results are what NCCL's would
be; NCCL's ordering adds nothing to them here because :class:`~resist.comm.comm.Comm` waits for
every operation before it issues the next).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

BACKEND_NAME = "nccl-model"


@dataclass
class _Transfer:
    kind: str  # "send" or "recv"
    peer: int
    tensor: torch.Tensor
    matched: bool = False


@dataclass
class _Unit:
    """Operations that run together: one ungrouped operation, or one coalesced batch."""

    rank: int
    transfers: list[_Transfer]
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None

    def describe(self) -> str:
        pending = [f"{t.kind} {'to' if t.kind == 'send' else 'from'} {t.peer}" for t in self.transfers if not t.matched]
        return f"rank {self.rank}: " + ", ".join(pending)


class Fabric:
    """The wires between the ranks of one run: each rank's queue of units, the head one running."""

    def __init__(self, size: int, timeout_s: float) -> None:
        self.size, self.timeout_s = size, timeout_s
        self._lock = threading.Lock()
        self._queues: list[list[_Unit]] = [[] for _ in range(size)]

    def submit(self, unit: _Unit) -> None:
        with self._lock:
            self._queues[unit.rank].append(unit)
            self._progress()

    def _running(self, rank: int) -> _Unit | None:
        queue = self._queues[rank]
        return queue[0] if queue else None

    def _progress(self) -> None:
        """Match every running send with the running receive of its peer; retire finished units."""
        changed = True
        while changed:
            changed = False
            for rank in range(self.size):
                unit = self._running(rank)
                if unit is None:
                    continue
                for send in (t for t in unit.transfers if t.kind == "send" and not t.matched):
                    peer_unit = self._running(send.peer)
                    receive = next(
                        (
                            t
                            for t in (peer_unit.transfers if peer_unit else [])
                            if t.kind == "recv" and t.peer == rank and not t.matched
                        ),
                        None,
                    )
                    if receive is None:
                        continue  # the peer is not running it yet; the unit's other sends may match
                    if receive.tensor.shape != send.tensor.shape or receive.tensor.dtype != send.tensor.dtype:
                        unit.error = peer_unit.error = (  # type: ignore[union-attr]
                            f"send {rank}->{send.peer} of {tuple(send.tensor.shape)} {send.tensor.dtype} met a "
                            f"receive of {tuple(receive.tensor.shape)} {receive.tensor.dtype}"
                        )
                    else:
                        receive.tensor.copy_(send.tensor)
                    send.matched = receive.matched = changed = True
            for queue in self._queues:
                if queue and all(t.matched for t in queue[0].transfers):
                    queue.pop(0).done.set()
                    changed = True

    def stuck(self) -> str:
        with self._lock:
            return "; ".join(unit.describe() for queue in self._queues for unit in queue[:1])


class _UnitWork(dist.Work):
    """Completes when its unit has run; a unit that cannot run is a timeout naming what waits."""

    def __init__(self, unit: _Unit, fabric: Fabric) -> None:
        super().__init__()
        self.unit, self.fabric = unit, fabric

    def wait(self, timeout=None) -> bool:  # noqa: ANN001 - torch's signature
        if not self.unit.done.wait(self.fabric.timeout_s):
            raise RuntimeError(
                f"{BACKEND_NAME}: point-to-point operations did not complete within {self.fabric.timeout_s} s "
                f"(deadlock: ungrouped operations run in issue order and a send waits for its receive); "
                f"waiting: {self.fabric.stuck()}"
            )
        if self.unit.error is not None:
            raise RuntimeError(f"{BACKEND_NAME}: {self.unit.error}")
        return True

    def is_completed(self) -> bool:
        return self.unit.done.is_set()


class _CoalescingBackend:
    """What ``batch_isend_irecv`` asks of a group's backend before it opens a coalescing group."""

    supports_coalescing = True


class NcclModelGroup(dist.ProcessGroup):
    """One rank's group: point-to-point through the :class:`Fabric`, collectives through ``gloo``."""

    def __init__(self, rank: int, size: int, *, fabric: Fabric, gloo: dist.Backend) -> None:
        super().__init__(rank, size)
        self.fabric, self.gloo = fabric, gloo
        self._batch: list[_Transfer] | None = None

    def getBackendName(self) -> str:  # noqa: N802 - torch's name
        return BACKEND_NAME

    def _get_backend(self, device: torch.device) -> _CoalescingBackend:
        return _CoalescingBackend()

    def _start_coalescing(self, device: torch.device) -> None:
        if self._batch is not None:
            raise RuntimeError(f"{BACKEND_NAME}: coalescing groups do not nest")
        self._batch = []

    def _end_coalescing(self, device: torch.device) -> dist.Work:
        transfers, self._batch = self._batch or [], None
        return self._issue(transfers)

    def _issue(self, transfers: list[_Transfer]) -> dist.Work:
        unit = _Unit(self.rank(), transfers)
        self.fabric.submit(unit)
        return _UnitWork(unit, self.fabric)

    def _transfer(self, kind: str, tensors: list[torch.Tensor], peer: int) -> dist.Work | None:
        (tensor,) = tensors
        transfer = _Transfer(kind, peer, tensor)
        if self._batch is not None:  # inside a coalescing group: runs with the batch
            self._batch.append(transfer)
            return None
        return self._issue([transfer])

    def send(self, tensors: list[torch.Tensor], dstRank: int, tag: int = 0) -> dist.Work | None:  # noqa: N803
        return self._transfer("send", tensors, dstRank)

    def recv(self, tensors: list[torch.Tensor], srcRank: int, tag: int = 0) -> dist.Work | None:  # noqa: N803
        return self._transfer("recv", tensors, srcRank)

    # -- collectives: gloo's results ----------------------------------------------------------

    def allreduce(self, *args, **kwargs) -> dist.Work:
        return self.gloo.allreduce(*args, **kwargs)

    def broadcast(self, *args, **kwargs) -> dist.Work:
        return self.gloo.broadcast(*args, **kwargs)

    def reduce(self, *args, **kwargs) -> dist.Work:
        return self.gloo.reduce(*args, **kwargs)

    def allgather(self, *args, **kwargs) -> dist.Work:
        return self.gloo.allgather(*args, **kwargs)

    def barrier(self, *args, **kwargs) -> dist.Work:
        return self.gloo.barrier(*args, **kwargs)
