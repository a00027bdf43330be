"""Derived randomness: every random stream is seeded from the run seed and a label, never global.

``derive_seed(seed, "data", epoch, rank)`` is a stable 63-bit integer (independent of Python's hash
randomisation), so any process can recreate any stream — after a resume too — without communication.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator

import torch

_GLOBAL_GENERATOR = threading.RLock()


def derive_seed(seed: int, *labels: object) -> int:
    """A stable non-negative 63-bit seed from ``seed`` and the ``labels`` (strs and ints)."""
    text = "/".join([str(int(seed)), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def generator(seed: int, *labels: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, *labels))


@contextlib.contextmanager
def seeded_global_generator(seed: int) -> Iterator[None]:
    """Run code that can only draw from torch's global CPU generator (torchvision's random
    transforms, ``reset_parameters``) on ``seed``, and leave that generator as it was.

    Serialised across threads, since thread workers share the global generator: project code
    draws from it nowhere else, so such code gives the same numbers whatever runs beside it.
    """
    with _GLOBAL_GENERATOR, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
