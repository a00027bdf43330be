"""The only package that touches torch.distributed: ``Comm`` (every transfer, billed to a ledger),
compressed point-to-point exchange, the byte cost model, and process groups (per process, or per
thread for the in-process backend)."""

from resist.comm.comm import Comm, payload_bytes
from resist.comm.compressed_exchange import exchange_compressed
from resist.comm.cost import Op, wire_bytes
from resist.comm.data_parallel import data_parallel
from resist.comm.ledger import Ledger, LedgerEntry, Purpose, Totals

__all__ = [
    "Comm",
    "Ledger",
    "LedgerEntry",
    "Op",
    "Purpose",
    "Totals",
    "data_parallel",
    "exchange_compressed",
    "payload_bytes",
    "wire_bytes",
]
