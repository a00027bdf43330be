"""Read a W&B offline transaction log (``run-<id>.wandb``) to check what a run really recorded.

The file is W&B's LevelDB-style log: a 7-byte header (``:W&B``, magic 0xBEE1, version), then
32 KiB blocks of chunks, each with a 7-byte header (crc32 4, length 2 little-endian, type 1:
full/first/middle/last) followed by a slice of a serialized ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _payloads(data: bytes):
    offset, pending = 7, b""
    while offset + 7 <= len(data):
        if _BLOCK - offset % _BLOCK < 7:  # block trailer too small for a header: zero padding
            offset += _BLOCK - offset % _BLOCK
            continue
        length, kind = int.from_bytes(data[offset + 4 : offset + 6], "little"), data[offset + 6]
        chunk, offset = data[offset + 7 : offset + 7 + length], offset + 7 + length
        if kind == 0 and length == 0:
            offset += _BLOCK - offset % _BLOCK if offset % _BLOCK else 0
            continue
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk


def read_offline_run(path: Path) -> dict[str, Any]:
    """``{"run": Run proto, "history": [dict per log call], "config": {key: value}, "metrics": {name or
    glob: its step metric ("" for an axis)}}``."""
    assert path.read_bytes()[:4] == b":W&B", f"{path} is not a W&B transaction log"
    result: dict[str, Any] = {"run": None, "history": [], "config": {}, "metrics": {}}
    for payload in _payloads(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            result["run"] = record.run
            result["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "metric":
            result["metrics"][record.metric.name or record.metric.glob_name] = record.metric.step_metric
        elif kind == "history":
            result["history"].append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
    return result
