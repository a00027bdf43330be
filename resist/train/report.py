"""Records of a run: per-worker statistics and ledgers gathered to rank 0, which alone writes.

Keys (see README): ``train/*`` over all workers' samples since the previous train record;
``comm/*`` from the workers' ledgers in both conventions (``payload`` and modeled ``wire`` bytes; a
point-to-point payload counts once, on its sender) as they stand after everything the record
reports, the gather that collects them included: ``comm/<convention>_bytes`` since the previous
train record summed over workers,
``comm/<convention>_bytes_per_worker`` the same divided by the number of workers,
``comm/cum_<convention>_bytes`` cumulative over workers, ``comm/cum_<convention>_bytes/<purpose>``
cumulative per purpose, ``comm/cum_ops/<purpose>`` the operations per purpose summed over workers
(an exchange counts each send and each receive); ``memory/*`` per worker (lists: peak allocation,
parameter bytes, parameter + optimizer-state bytes) and their maximum; ``time/*`` rank 0's clocks,
except ``time/comm_s/<purpose>``: the ledgers' seconds per purpose, cumulative, mean over workers.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from resist.comm import Comm, Op, Purpose, wire_bytes
from resist.logging import MetricSink, Record

_STATS = [
    "loss_sum",
    "correct",
    "seen",
    "compute_s",
    "sync_s",
    "peak_bytes",
    "param_bytes",
    "held_bytes",
    "protocol_bytes",
]
_PURPOSES = list(Purpose)
_CONVENTIONS = ["payload", "wire"]
_LEDGER_FIELDS = [*_CONVENTIONS, "seconds", "operations"]  # per purpose: bytes in both conventions, seconds, ops


class Reporter:
    def __init__(self, comm: Comm, sink: MetricSink) -> None:
        self.comm, self.sink = comm, sink
        self.is_writer = comm.rank == 0
        self.start_time = time.perf_counter()
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=comm.device)
        self.correct = torch.zeros((), dtype=torch.float64, device=comm.device)
        self.seen = self.samples = 0
        self.compute_s = self.sync_s = self.eval_s = 0.0
        self.peak_bytes = self.param_bytes = self.held_bytes = self.protocol_bytes = 0
        self._previous_totals = {c: 0.0 for c in _CONVENTIONS}
        self._comm_keys: dict[str, Any] = {}

    def _log(self, record: Record) -> None:
        if self.is_writer:
            self.sink.log(record)

    def start(self, info: dict[str, Any]) -> None:
        self._log({"event": "start", "step": 0, **info})

    def state_dict(self) -> dict[str, Any]:
        """The accumulators since the last report, the totals reported so far and the elapsed time."""
        return {
            "loss_sum": self.loss_sum.clone(),
            "correct": self.correct.clone(),
            "seen": self.seen,
            "samples": self.samples,
            "seconds": [self.compute_s, self.sync_s, self.eval_s],
            "elapsed_s": time.perf_counter() - self.start_time,
            "previous_totals": dict(self._previous_totals),
            "comm_keys": dict(self._comm_keys),
            "memory": [self.peak_bytes, self.param_bytes, self.held_bytes, self.protocol_bytes],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s state; the elapsed time goes on from where it stopped."""
        self.loss_sum.copy_(state["loss_sum"])
        self.correct.copy_(state["correct"])
        self.seen, self.samples = state["seen"], state["samples"]
        self.compute_s, self.sync_s, self.eval_s = state["seconds"]
        self.start_time = time.perf_counter() - state["elapsed_s"]
        self._previous_totals = dict(state["previous_totals"])
        self._comm_keys = dict(state["comm_keys"])
        # (checkpoints written before the protocol's bytes were reported hold three figures)
        self.peak_bytes, self.param_bytes, self.held_bytes, self.protocol_bytes = [*state["memory"], 0][:4]

    def resumed(self, info: dict[str, Any]) -> None:
        """The ``resume`` record: where a resumed run continues from."""
        self._log({"event": "resume", **info})

    def add_batch(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Account one training batch (no device synchronisation)."""
        self.loss_sum += loss.double() * len(labels)
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.seen += len(labels)
        self.samples += len(labels)

    def add_seconds(self, compute_s: float, sync_s: float) -> None:
        """Account one round's clock readings (taken after the device finished the work)."""
        self.compute_s += compute_s
        self.sync_s += sync_s

    def _gather(self) -> torch.Tensor:
        """Every worker's statistics and per-purpose cumulative ledger totals: (workers, fields).

        The totals include this gather itself (billed to ``metrics`` as the ledger bills it), so they
        equal each worker's ledger once the gather is done."""
        ledger = self.comm.ledger.cumulative
        local = [
            self.loss_sum.item(),
            self.correct.item(),
            float(self.seen),
            self.compute_s,
            self.sync_s,
            float(self.peak_bytes),
            float(self.param_bytes),
            float(self.held_bytes),
            float(self.protocol_bytes),
        ]
        own_payload = (len(local) + len(_LEDGER_FIELDS) * len(_PURPOSES)) * torch.finfo(torch.float64).bits // 8
        for purpose in _PURPOSES:
            payload, wire = float(ledger[purpose].payload_bytes), ledger[purpose].wire_bytes
            if purpose == Purpose.metrics:
                payload += own_payload
                wire += wire_bytes(Op.all_gather, own_payload, self.comm.size)
            operations = ledger[purpose].operations + (1 if purpose == Purpose.metrics else 0)
            local += [payload, wire, ledger[purpose].seconds, float(operations)]
        vector = torch.tensor(local, dtype=torch.float64, device=self.comm.device)
        return torch.stack(self.comm.all_gather(vector, Purpose.metrics)).cpu()

    def _comm_record(self, table: torch.Tensor) -> dict[str, Any]:
        record: dict[str, Any] = {}
        ledger = table[:, len(_STATS) :].reshape(table.shape[0], len(_PURPOSES), len(_LEDGER_FIELDS))
        seconds, operations = _LEDGER_FIELDS.index("seconds"), _LEDGER_FIELDS.index("operations")
        for p, purpose in enumerate(_PURPOSES):
            # seconds: mean over workers (each waits in every collective); operations: summed (a
            # point-to-point exchange counts each send and each receive)
            record[f"time/comm_s/{purpose.value}"] = ledger[:, p, seconds].mean().item()
            record[f"comm/cum_ops/{purpose.value}"] = ledger[:, p, operations].sum().item()
        for c, convention in enumerate(_CONVENTIONS):
            cumulative = ledger[:, :, c].sum().item()
            record[f"comm/cum_{convention}_bytes"] = cumulative
            for p, purpose in enumerate(_PURPOSES):
                record[f"comm/cum_{convention}_bytes/{purpose.value}"] = ledger[:, p, c].sum().item()
            record[f"comm/cum_{convention}_bytes_per_worker"] = ledger[:, :, c].sum(dim=1).tolist()
        return record

    def report(
        self,
        step: int,
        *,
        epoch: float,
        lr: float,
        peak_bytes: int,
        held: tuple[int, int, int],
        evaluation: dict[str, float] | None = None,
        eval_seconds: float = 0.0,
    ) -> None:
        """Gather the workers' statistics (billed to ``metrics``) and write a ``train`` record, then,
        when ``evaluation`` is given, an ``eval`` record with the same cumulative bytes (the
        evaluation's own traffic included), so accuracy plots against bytes and wall-clock from eval
        records alone.

        ``held`` is this worker's ``(parameter bytes, parameter + optimizer-state bytes, bytes the
        protocol keeps beside them)`` (:meth:`TrainingProtocol.held_state_bytes`);
        ``eval_seconds`` the evaluation's duration."""
        self.peak_bytes, (self.param_bytes, self.held_bytes, self.protocol_bytes) = peak_bytes, held
        self.eval_s += eval_seconds
        table = self._gather()
        stats = {name: table[:, i] for i, name in enumerate(_STATS)}
        seen = stats["seen"].sum().item()
        self._comm_keys = self._comm_record(table)
        elapsed = time.perf_counter() - self.start_time
        record: dict[str, Any] = {
            "event": "train",
            "step": step,
            "epoch": epoch,
            "samples": self.samples,
            "lr": lr,
            "train/loss": stats["loss_sum"].sum().item() / seen,
            "train/acc1": stats["correct"].sum().item() / seen,
            **self._comm_keys,
            "memory/peak_bytes_per_worker": stats["peak_bytes"].tolist(),
            "memory/peak_bytes_max": stats["peak_bytes"].max().item(),
            "memory/param_bytes_per_worker": stats["param_bytes"].tolist(),
            "memory/held_bytes_per_worker": stats["held_bytes"].tolist(),
            "memory/held_bytes_max": stats["held_bytes"].max().item(),
            "memory/protocol_bytes_per_worker": stats["protocol_bytes"].tolist(),
            "memory/protocol_bytes_max": stats["protocol_bytes"].max().item(),
            "time/elapsed_s": elapsed,
            "time/compute_s": self.compute_s,
            "time/sync_s": self.sync_s,
            "time/eval_s": self.eval_s,
        }
        workers = table.shape[0]
        for convention in _CONVENTIONS:
            interval = record[f"comm/cum_{convention}_bytes"] - self._previous_totals[convention]
            self._previous_totals[convention] = record[f"comm/cum_{convention}_bytes"]
            record[f"comm/{convention}_bytes"] = interval
            record[f"comm/{convention}_bytes_per_worker"] = interval / workers
        self._log(record)
        self.loss_sum.zero_()
        self.correct.zero_()
        self.seen = 0
        if evaluation is not None:
            self._log(
                {
                    "event": "eval",
                    "step": step,
                    "epoch": epoch,
                    **evaluation,
                    **self._comm_keys,
                    "time/elapsed_s": elapsed,
                    "time/eval_s": self.eval_s,
                }
            )

    def summary(self, step: int, epoch: float, last_eval: dict[str, float], **facts: Any) -> Record:
        """The ``summary`` record: the final evaluation, the cumulative bytes of the last report
        (equal to the ledgers' totals when it was the run's last communication), times, ``facts``."""
        record = {
            "event": "summary",
            "step": step,
            "epoch": epoch,
            "samples": self.samples,
            **last_eval,
            **self._comm_keys,
            "time/elapsed_s": time.perf_counter() - self.start_time,
            "time/compute_s": self.compute_s,
            "time/sync_s": self.sync_s,
            "time/eval_s": self.eval_s,
            "time/finished_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            **facts,
        }
        self._log(record)
        return record
