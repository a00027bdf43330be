"""The ledger: a record of every communication operation of one rank.

Each operation is a :class:`LedgerEntry` (op, purpose, payload bytes, modeled wire bytes, group
size, peer, round, seconds: from issue to completion on this rank, so a collective's seconds include
waiting for the slowest rank; a DDP hook's overlap the backward pass). The ledger keeps the
entries of the current round only (for inspection) and running totals per purpose over the whole
run: a few numbers per purpose, whatever the run's length. The totals are in :meth:`Ledger.state_dict`,
and so in every checkpoint; what each round sent is in the run's records (``metrics.jsonl``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from resist.comm.cost import Op


class Purpose(str, Enum):
    """Why bytes moved: ``init`` (agreeing on the initial weights), ``train_sync`` (gradient/parameter
    averaging), ``handoff`` (ResIST blocks to their next holder), ``eval`` (evaluation), ``metrics``
    (reporting), ``control`` (the workers agreeing to stop at a round end, in jobs that can be
    preempted)."""

    init = "init"
    train_sync = "train_sync"
    handoff = "handoff"
    eval = "eval"
    metrics = "metrics"
    control = "control"


# A round's synchronisation: what the workers send at each round's end (averaging, ResIST's hand-off).
SYNC_PURPOSES: tuple[Purpose, ...] = (Purpose.train_sync, Purpose.handoff)
# The bytes to train: the initial weights and every round's synchronisation (evaluation and metrics apart).
TRAINING_PURPOSES: tuple[Purpose, ...] = (Purpose.init, *SYNC_PURPOSES)


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    op: Op
    purpose: Purpose
    payload_bytes: int
    wire_bytes: float
    group_size: int
    peer: int | None
    round: int
    seconds: float


@dataclass
class Totals:
    """Sums over a set of entries."""

    payload_bytes: int = 0
    wire_bytes: float = 0.0
    seconds: float = 0.0
    operations: int = 0

    def add(self, entry: LedgerEntry) -> None:
        self.payload_bytes += entry.payload_bytes
        self.wire_bytes += entry.wire_bytes
        self.seconds += entry.seconds
        self.operations += 1


class Ledger:
    def __init__(self) -> None:
        self.round = 0
        self.round_entries: list[LedgerEntry] = []
        self.cumulative: dict[Purpose, Totals] = defaultdict(Totals)

    def record(self, entry: LedgerEntry) -> None:
        self.round_entries.append(entry)
        self.cumulative[entry.purpose].add(entry)

    def start_round(self, round_index: int) -> None:
        """Entries recorded from now on belong to ``round_index``; the previous round's entry list is
        dropped (its totals remain)."""
        self.round = round_index
        self.round_entries = []

    def total(self, purposes: tuple[Purpose, ...] | None = None) -> Totals:
        """Cumulative totals over ``purposes`` (all when None)."""
        result = Totals()
        for purpose, totals in self.cumulative.items():
            if purposes is None or purpose in purposes:
                result.payload_bytes += totals.payload_bytes
                result.wire_bytes += totals.wire_bytes
                result.seconds += totals.seconds
                result.operations += totals.operations
        return result

    def state_dict(self) -> dict[str, Any]:
        def plain(table: dict[Purpose, Totals]) -> dict[str, dict[str, Any]]:
            return {purpose.value: asdict(totals) for purpose, totals in table.items()}

        return {
            "round": self.round,
            "cumulative": plain(self.cumulative),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s totals (a checkpoint's ``per_round`` table, written before
        this ledger dropped it, is not read)."""

        def totals(table: dict[str, dict[str, Any]]) -> dict[Purpose, Totals]:
            result: dict[Purpose, Totals] = defaultdict(Totals)
            result.update({Purpose(p): Totals(**values) for p, values in table.items()})
            return result

        self.round, self.round_entries = state["round"], []
        self.cumulative = totals(state["cumulative"])
