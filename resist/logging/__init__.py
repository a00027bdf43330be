"""Metric sinks: ``metrics.jsonl`` (always), the console, and W&B (imported only when enabled).

A record is a flat dict with an ``event`` (``start``, ``resume``, ``train``, ``eval`` or ``summary``), the
optimizer ``step`` it refers to, and metric keys; the README lists them.
"""

from __future__ import annotations

from typing import Any, Protocol

Record = dict[str, Any]


class MetricSink(Protocol):
    def log(self, record: Record) -> None: ...

    def close(self) -> None: ...


class FanOut:
    """Sends every record to every sink."""

    def __init__(self, sinks: list[MetricSink]) -> None:
        self.sinks = sinks

    def log(self, record: Record) -> None:
        for sink in self.sinks:
            sink.log(record)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
