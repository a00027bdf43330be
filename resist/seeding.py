"""Derived randomness: every random stream is seeded from the run seed and a label, never global.

``derive_seed(seed, "data", epoch, rank)`` is a stable 63-bit integer (independent of Python's hash
randomisation), so any process can recreate any stream — after a resume too — without communication.
Pure: torch generators seeded this way are in :mod:`resist.generators`.
"""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *labels: object) -> int:
    """A stable non-negative 63-bit seed from ``seed`` and the ``labels`` (strs and ints)."""
    text = "/".join([str(int(seed)), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
