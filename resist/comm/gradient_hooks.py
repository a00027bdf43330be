"""DDP communication hooks: torch's own hooks, run on a :class:`Comm`'s group, every all-reduce they
issue billed to the Comm's ledger with the bytes it moves.

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
  same on every rank. The bytes billed follow :func:`resist.comm.cost.powersgd_sizes`; after each
  bucket the hook checks them against the factors torch allocated and fails loudly if they differ.

PowerSGD's state is kept per DDP bucket, so the buckets must not change during a run: DDP rebuilds
them once, after a process's first step (in gradient-ready order), and on a resumed run that
rebuild would come after the checkpoint's residuals were loaded into the first layout. The
PowerSGD data-parallel wrapper is therefore built with ``find_unused_parameters=True``
(:func:`resist.comm.data_parallel.data_parallel`), under which DDP keeps its first layout (one extra
traversal of the autograd graph per step; torch warns once about it).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import PowerSGDState, powerSGD_hook

from resist.comm.comm import Comm
from resist.comm.cost import powersgd_sizes
from resist.comm.ledger import Purpose
from resist.generators import generator


class Float32Hook:
    """torch's default all-reduce hook; ``freezes_buckets``: whether DDP must keep its first bucket
    layout for this hook's state (see the module docstring)."""

    freezes_buckets = False

    def __init__(self, comm: Comm, purpose: Purpose = Purpose.train_sync) -> None:
        self.comm, self.purpose = comm, purpose

    def _run(self, bucket):
        return default_hooks.allreduce_hook(self.comm.group, bucket)

    def _payloads(self, bucket) -> list[int]:
        """Bytes of each all-reduce :meth:`_run` issues for ``bucket``."""
        buffer = bucket.buffer()
        return [buffer.numel() * buffer.element_size()]

    def communicate(self, _state, bucket):  # unannotated: DDP inspects annotations, which are strings here
        """The hook DDP calls per bucket: runs torch's hook, bills its all-reduces when they are done."""
        start = time.perf_counter()
        payloads = self._payloads(bucket)
        future = self._run(bucket)

        def billed(fut: torch.futures.Future[torch.Tensor]) -> torch.Tensor:
            self._check(bucket)
            self.comm.record_all_reduces(payloads, self.purpose, seconds=time.perf_counter() - start)
            return fut.value()

        return future.then(billed)

    def _check(self, bucket) -> None:
        """Called when a bucket's all-reduces are done (nothing to check for a plain hook)."""

    def state_dict(self) -> dict[str, Any]:
        """The hook's training state, plain data and tensors (none for a stateless hook)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s ``state``."""


class BF16Hook(Float32Hook):
    """torch's ``bf16_compress_hook``: 2 bytes per value on the wire."""

    def _run(self, bucket):
        return default_hooks.bf16_compress_hook(self.comm.group, bucket)

    def _payloads(self, bucket) -> list[int]:
        return [bucket.buffer().numel() * 2]


class PowerSGDHook(Float32Hook):
    """torch's ``powerSGD_hook`` at rank ``rank`` from step ``start_step`` (>= 2), error feedback and
    warm start on; initial Q factors from ``seed``."""

    freezes_buckets = True

    def __init__(self, comm: Comm, *, rank: int, start_step: int, seed: int, purpose: Purpose = Purpose.train_sync):
        super().__init__(comm, purpose)
        self.seed = seed
        self.state = PowerSGDState(
            process_group=comm.group,
            matrix_approximation_rank=rank,
            start_powerSGD_iter=start_step,
            use_error_feedback=True,
            warm_start=True,
        )
        self._expected: dict[int, tuple[int, int]] = {}  # bucket index -> (P, Q) sizes of its last step

    def _payloads(self, bucket) -> list[int]:
        state, buffer = self.state, bucket.buffer()
        if state.iter < state.start_powerSGD_iter:  # torch's hook all-reduces the float32 bucket
            self._expected.pop(bucket.index(), None)
            return [buffer.numel() * buffer.element_size()]
        sizes = powersgd_sizes(
            [g.shape for g in bucket.gradients()], state.matrix_approximation_rank, state.min_compression_rate
        )
        index = bucket.index()
        if index not in state.q_memory_dict:  # the first compressing step: warm-start factors to begin from
            draws = generator(self.seed, "powersgd", index)
            state.p_memory_dict[index] = torch.zeros(sizes.p, dtype=buffer.dtype, device=buffer.device)
            q = torch.randn(sizes.q, generator=draws, dtype=buffer.dtype)
            state.q_memory_dict[index] = q.to(buffer.device)
        self._expected[index] = (sizes.p, sizes.q)
        size = buffer.element_size()
        return [sizes.uncompressed * size, sizes.p * size, sizes.q * size]

    def _run(self, bucket):
        future = powerSGD_hook(self.state, bucket)
        # torch's hook issues a bucket's P and Q all-reduces from the completion callbacks of the one
        # before, which gloo runs on its own threads: left to run on, they would interleave with the
        # next bucket's all-reduces in a different order on each rank (a collective mismatch; gloo and
        # NCCL both need every rank to issue collectives in one order). Each bucket finishes first.
        future.wait()
        return future

    def _check(self, bucket) -> None:
        index = bucket.index()
        if index not in self._expected:
            return
        torch_sizes = (self.state.p_memory_dict[index].numel(), self.state.q_memory_dict[index].numel())
        if torch_sizes != self._expected[index]:
            raise RuntimeError(
                f"PowerSGD bucket {index}: torch's hook sent factors of {torch_sizes} values, the ledger billed "
                f"{self._expected[index]}: resist.comm.cost.powersgd_sizes no longer matches this torch"
            )

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
