"""torch generators from derived seeds (:func:`resist.seeding.derive_seed`), and the one guarded way
to run code that can only draw from torch's global generator."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

from resist.seeding import derive_seed

_GLOBAL_GENERATOR = threading.RLock()


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
