"""DDP communication hooks: torch's own hooks, run on a :class:`Comm`'s group, every all-reduce they
issue billed to the Comm's ledger (``train_sync``) with the bytes it moves.

* :class:`Float32Hook` — ``default_hooks.allreduce_hook``: the bucket's float32 gradients.
* :class:`BF16Hook` — ``default_hooks.bf16_compress_hook``: the bucket cast to bfloat16 (2 bytes per
  value), all-reduced, cast back.
* :class:`PowerSGDHook` — ``powerSGD_hook.powerSGD_hook`` (Vogels et al., 2019) with error feedback
  and warm start: before ``start_step`` a float32 all-reduce; from then on, per bucket, three
  all-reduces: the tensors not worth compressing (float32), then the factors P and Q of the others.
  Its state — the step count, each bucket's error-feedback residual and warm-start factors — is
  training state: :meth:`PowerSGDHook.state_dict` holds all of it, so a resumed run continues
  bitwise rather than restarting the residuals. Its random initial Q factors are drawn from a
  generator derived from the run's seed and the bucket (never from torch's global generator), the
  same on every rank. The bytes billed follow :func:`resist.comm.cost.powersgd_sizes`; each bucket
  checks them against torch's own count of the values it compresses to
  (``total_numel_after_compression``) and fails loudly if they differ.

Seconds are billed when the step's gradients are in (:meth:`Float32Hook.settle`, called by the
data-parallel protocol at each step's end), from a clock started when DDP hands the hook a bucket
to one stopped in the completion callback: on a CPU (gloo) wall-clock seconds, as the callback runs
when the all-reduce is done; on a GPU CUDA events, because NCCL completes the future when the
kernel is queued (the callback's current stream waits for the all-reduce, so an event recorded
there marks its end) and settling waits for those events, like every other ``Comm`` operation.

PowerSGD's state is kept per DDP bucket, so the buckets must not change during a run: DDP rebuilds
them once, after a process's first step (in gradient-ready order), and on a resumed run that
rebuild would come after the checkpoint's residuals were loaded into the first layout. The
PowerSGD data-parallel wrapper is therefore built with ``find_unused_parameters=True``
(:func:`resist.comm.data_parallel.data_parallel`), under which DDP keeps its first layout. That
costs one extra traversal of the autograd graph per step (torch warns once about it) and one more
all-reduce per step, which DDP issues itself: its map of the parameters used, one int32 per
parameter tensor, billed here with the step's last bucket.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import PowerSGDState, powerSGD_hook

from resist.comm.comm import Comm
from resist.comm.cost import powersgd_sizes
from resist.comm.ledger import Purpose
from resist.generators import generator


class _Interval:
    """Seconds from construction to :meth:`stop`: wall-clock on a CPU; CUDA events on the current
    stream on a GPU (read by :meth:`seconds`, which waits for the stop event)."""

    def __init__(self, device: torch.device) -> None:
        self.events = None
        if device.type == "cuda":
            self.events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            self.events[0].record()
        self.start, self.end = time.perf_counter(), 0.0

    def stop(self) -> None:
        if self.events is not None:
            self.events[1].record()
        self.end = time.perf_counter()

    def seconds(self) -> float:
        if self.events is None:
            return self.end - self.start
        self.events[1].synchronize()
        return self.events[0].elapsed_time(self.events[1]) / 1000.0


class Float32Hook:
    """torch's default all-reduce hook; ``freezes_buckets``: whether DDP must keep its first bucket
    layout for this hook's state (see the module docstring)."""

    freezes_buckets = False

    def __init__(self, comm: Comm) -> None:
        self.comm = comm
        self._used_map_bytes = 0
        self._unbilled: list[tuple[list[int], _Interval]] = []

    def bind(self, model: nn.Module) -> None:
        """Called by :func:`resist.comm.data_parallel.data_parallel` with the model DDP wraps: with
        ``freezes_buckets``, DDP also all-reduces its used-parameter map (an int32 per parameter
        tensor) every step, billed with the step's last bucket."""
        if self.freezes_buckets:
            self._used_map_bytes = 4 * sum(1 for p in model.parameters() if p.requires_grad)

    def _send(self, bucket) -> tuple[torch.futures.Future[torch.Tensor], list[int]]:
        """Run torch's hook on ``bucket``: its future and the bytes of each all-reduce it issues."""
        buffer = bucket.buffer()
        return default_hooks.allreduce_hook(self.comm.group, bucket), [buffer.numel() * buffer.element_size()]

    def communicate(self, _state, bucket):  # unannotated: DDP inspects annotations, which are strings here
        """The hook DDP calls per bucket: runs torch's hook and times its all-reduces until they are
        done; :meth:`settle` bills them."""
        interval = _Interval(self.comm.device)
        future, payloads = self._send(bucket)
        if bucket.is_last() and self._used_map_bytes:
            payloads.append(self._used_map_bytes)

        def done(fut: torch.futures.Future[torch.Tensor]) -> torch.Tensor:
            interval.stop()
            self._unbilled.append((payloads, interval))
            return fut.value()

        return future.then(done)

    def settle(self) -> None:
        """Bill the all-reduces of the buckets handed over since the last call (after the backward
        pass: on a GPU this waits for them to finish), in the order they completed."""
        for payloads, interval in self._unbilled:
            self.comm.record_all_reduces(payloads, Purpose.train_sync, seconds=interval.seconds())
        self._unbilled.clear()

    def state_dict(self) -> dict[str, Any]:
        """The hook's training state, plain data and tensors (none for a stateless hook)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s ``state``."""


class BF16Hook(Float32Hook):
    """torch's ``bf16_compress_hook``: 2 bytes per value on the wire."""

    def _send(self, bucket) -> tuple[torch.futures.Future[torch.Tensor], list[int]]:
        return default_hooks.bf16_compress_hook(self.comm.group, bucket), [bucket.buffer().numel() * 2]


class PowerSGDHook(Float32Hook):
    """torch's ``powerSGD_hook`` at rank ``rank`` from step ``start_step`` (>= 2), error feedback and
    warm start on; initial Q factors from ``seed``."""

    freezes_buckets = True

    def __init__(self, comm: Comm, *, rank: int, start_step: int, seed: int) -> None:
        super().__init__(comm)
        self.seed = seed
        self.state = PowerSGDState(
            process_group=comm.group,
            matrix_approximation_rank=rank,
            start_powerSGD_iter=start_step,
            use_error_feedback=True,
            warm_start=True,
        )

    def _send(self, bucket) -> tuple[torch.futures.Future[torch.Tensor], list[int]]:
        state, buffer = self.state, bucket.buffer()
        if state.iter < state.start_powerSGD_iter:  # torch's hook all-reduces the float32 bucket
            return powerSGD_hook(state, bucket), [buffer.numel() * buffer.element_size()]
        sizes = powersgd_sizes(
            [g.shape for g in bucket.gradients()], state.matrix_approximation_rank, state.min_compression_rate
        )
        index = bucket.index()
        if index not in state.q_memory_dict:  # the first compressing step: warm-start factors to begin from
            draws = generator(self.seed, "powersgd", index)
            state.p_memory_dict[index] = torch.zeros(sizes.p, dtype=buffer.dtype, device=buffer.device)
            q = torch.randn(sizes.q, generator=draws, dtype=buffer.dtype)
            state.q_memory_dict[index] = q.to(buffer.device)
        counted = state.total_numel_after_compression
        future = powerSGD_hook(state, bucket)
        sent = state.total_numel_after_compression - counted  # torch's count, made before it sends
        if sent != sizes.total:
            raise RuntimeError(
                f"PowerSGD bucket {index}: torch's hook sends {sent} values, the ledger bills "
                f"{sizes.total}: resist.comm.cost.powersgd_sizes no longer matches this torch"
            )
        # torch's hook issues a bucket's P and Q all-reduces from the completion callbacks of the one
        # before, which gloo runs on its own threads: left to run on, they would interleave with the
        # next bucket's all-reduces in a different order on each rank (a collective mismatch: every
        # rank must issue collectives in one order). Each bucket finishes first, which gives up the
        # overlap of PowerSGD's all-reduces with the rest of the backward pass (NCCL, whose futures
        # complete on the issuing thread, would not need it; the order is kept the same everywhere).
        future.wait()
        size = buffer.element_size()
        return future, [sizes.uncompressed * size, sizes.p * size, sizes.q * size]

    def state_dict(self) -> dict[str, Any]:
        """The step count and, per bucket index, the error-feedback residual and the P and Q factors."""
        state = self.state

        def copies(tensors: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
            return {index: t.detach().clone() for index, t in tensors.items()}

        return {
            "iter": state.iter,
            "error": copies(state.error_dict),
            "p": copies(state.p_memory_dict),
            "q": copies(state.q_memory_dict),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.comm.device

        def moved(tensors: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
            return {int(index): t.to(device) for index, t in tensors.items()}

        self.state.iter = state["iter"]
        self.state.error_dict = moved(state["error"])
        self.state.p_memory_dict = moved(state["p"])
        self.state.q_memory_dict = moved(state["q"])
