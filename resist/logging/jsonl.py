"""One JSON object per line, flushed per record, never overwriting an existing file."""

from __future__ import annotations

import json
from pathlib import Path

from resist.logging import Record


class JsonlSink:
    """Writes records to ``path``. The file must not exist yet (results are never overwritten), unless
    ``append``: a resumed run continues its file."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = path
        self._file = path.open("a" if append else "x", encoding="utf-8")

    def log(self, record: Record) -> None:
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_jsonl(path: Path) -> list[Record]:
    """All records of a metrics file, in order."""
    with path.open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]
