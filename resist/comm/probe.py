"""Measure this machine's loopback link as the workers see it: ring all-reduces through
:class:`~resist.comm.Comm` over gloo between processes on one host, timed for several payload
sizes (for the what-if model's check, :mod:`resist.analysis.whatif`)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.multiprocessing as mp

from resist.comm.backends import init_process_comm, shutdown_process_comm
from resist.comm.cost import Op, wire_bytes
from resist.comm.ledger import Purpose
from resist.comm.ports import free_port


@dataclass(frozen=True)
class _Probe:
    workers: int
    port: int
    sizes: list[int]  # float32 elements per all-reduce
    repeats: int
    results: Any  # a Manager dict: elements -> median seconds (rank 0 writes it)


def _worker(rank: int, probe: _Probe) -> None:
    torch.set_num_threads(1)
    comm = init_process_comm(
        rank=rank, world_size=probe.workers, master_addr="127.0.0.1", master_port=probe.port, device=torch.device("cpu")
    )
    try:
        for numel in probe.sizes:
            tensor = torch.ones(numel)
            timings = []
            for _ in range(probe.repeats + 1):  # the first is a warm-up
                comm.barrier()
                start = time.perf_counter()
                comm.all_reduce([tensor], Purpose.train_sync)  # as a worker averages its parameters
                timings.append(time.perf_counter() - start)
            if rank == 0:
                probe.results[numel] = statistics.median(timings[1:])
    finally:
        shutdown_process_comm()


def loopback_all_reduce(workers: int, payload_bytes: list[int], repeats: int = 5) -> list[tuple[float, float, float]]:
    """For each payload (bytes, float32), ``(wire bytes per worker, messages per worker, median
    seconds)`` of a ring all-reduce among ``workers`` processes on this host."""
    sizes = [size // 4 for size in payload_bytes]
    with mp.Manager() as manager:
        results = manager.dict()
        probe = _Probe(workers=workers, port=free_port(), sizes=sizes, repeats=repeats, results=results)
        mp.spawn(_worker, args=(probe,), nprocs=workers, join=True)
        measured = dict(results)
    return [(wire_bytes(Op.all_reduce, 4 * n, workers), 2.0 * (workers - 1), measured[n]) for n in sizes]
