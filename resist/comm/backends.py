"""Process groups for :class:`Comm`: one per process (torch.distributed's default group, started
from an explicit rendezvous), or one per thread (the in-process backend).

The in-process backend runs S workers as threads of one process; each thread owns a real gloo
process group connected through a shared in-memory store, so collectives, point-to-point
transfers and DDP behave exactly as across processes, at a fraction of the start-up cost.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch
import torch.distributed as dist

from resist.comm.comm import Comm
from resist.comm.nccl_model import Fabric, NcclModelGroup

T = TypeVar("T")
_thread_runs = itertools.count()


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_process_comm(
    *, rank: int, world_size: int, master_addr: str, master_port: int, device: torch.device, timeout_s: float = 1800
) -> Comm:
    """Join the job's default process group (TCP rendezvous at ``master_addr:master_port``)."""
    dist.init_process_group(
        backend_for(device),
        init_method=f"tcp://{master_addr}:{master_port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
        device_id=device if device.type == "cuda" else None,
    )
    return Comm(dist.group.WORLD, rank=rank, size=world_size, device=device)


def shutdown_process_comm() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _process_group_over(backend: dist.Backend, store: dist.Store, *, rank: int, size: int) -> dist.ProcessGroup:
    """A full ProcessGroup over a thread worker's gloo backend, for DDP, which accepts nothing else.

    Private shim, checked against torch 2.14.1: torch builds its own groups this way
    (``ProcessGroup._set_default_backend`` and ``_register_backend``). Everything else a thread
    worker does goes to the public ``ProcessGroupGloo`` backend directly.
    """
    group = dist.ProcessGroup(store, rank, size)
    group._set_default_backend(dist.ProcessGroup.BackendType.GLOO)
    group._register_backend(torch.device("cpu"), dist.ProcessGroup.BackendType.GLOO, backend)
    return group


@contextlib.contextmanager
def _registered(group: dist.ProcessGroup | dist.Backend, size: int) -> Iterator[None]:
    """Make a thread worker's group known to torch.distributed's rank translation while it runs.

    ``dist.P2POp`` (hence ``batch_isend_irecv``) maps group ranks to global ranks through the
    registry that ``new_group`` fills; thread groups are made outside it, with global rank = group
    rank. Private shim, checked against torch 2.14.1: ``distributed_c10d._world.pg_group_ranks``.
    """
    registry = dist.distributed_c10d._world.pg_group_ranks
    registry[group] = {rank: rank for rank in range(size)}
    try:
        yield
    finally:
        registry.pop(group, None)


def _shut_down(group: dist.ProcessGroupGloo) -> None:
    """Stop a finished thread worker's gloo group from the caller's thread (the caller then collects
    the garbage there too). Left to the garbage collector (the groups sit in reference cycles: DDP's
    reducer and hook hold the Comm), a group's last reference could drop in another thread, one of
    gloo's own among them, and its destructor would then join that very thread: the process aborts
    (std::system_error, "Resource deadlock avoided"; seen with DDP runs after int8 all-reduces)."""
    group.shutdown()


class ThreadWorkerError(RuntimeError):
    def __init__(self, rank: int, error: BaseException) -> None:
        super().__init__(f"thread worker {rank} failed: {type(error).__name__}: {error}")
        self.rank, self.error = rank, error


def run_in_threads(
    num_workers: int, fn: Callable[[Comm], T], *, timeout_s: float = 120, nccl_model: bool = False
) -> list[T]:
    """Run ``fn(comm)`` on ``num_workers`` CPU thread workers joined by gloo; return their results in
    rank order. The first failure is re-raised as :class:`ThreadWorkerError` naming its rank (the
    other workers then fail within ``timeout_s`` if they wait on it).

    ``nccl_model``: point-to-point transfers follow NCCL's ordering rules
    (:mod:`resist.comm.nccl_model`); a deadlock then fails within ``timeout_s``."""
    store = dist.PrefixStore(f"resist-threads-{next(_thread_runs)}", dist.HashStore())
    fabric = Fabric(num_workers, timeout_s) if nccl_model else None
    results: list[T | None] = [None] * num_workers
    errors: list[BaseException | None] = [None] * num_workers
    groups: list[dist.ProcessGroupGloo] = []

    def work(rank: int) -> None:
        try:
            gloo = dist.ProcessGroupGloo(store, rank, num_workers, datetime.timedelta(seconds=timeout_s))
            groups.append(gloo)
            if fabric is not None:
                group = process_group = NcclModelGroup(rank, num_workers, fabric=fabric, gloo=gloo)
            else:
                group, process_group = gloo, _process_group_over(gloo, store, rank=rank, size=num_workers)
            comm = Comm(group, rank=rank, size=num_workers, device=torch.device("cpu"), process_group=process_group)
            with _registered(group, num_workers):
                results[rank] = fn(comm)
        except BaseException as error:  # noqa: BLE001 - reported to the caller with the rank
            errors[rank] = error

    threads = [threading.Thread(target=work, args=(rank,), name=f"worker-{rank}") for rank in range(num_workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for group in groups:  # here, in the caller's thread: see _shut_down
        _shut_down(group)
    groups.clear()
    gc.collect()  # the workers' cycles end here too, not in whichever thread allocates next
    for rank, error in enumerate(errors):
        if error is not None:
            raise ThreadWorkerError(rank, error) from error
    return results  # type: ignore[return-value]
