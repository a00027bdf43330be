"""torch generators from derived seeds (:func:`resist.seeding.derive_seed`), and the one guarded way
to run code that can only draw from torch's global generator."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
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


def global_rng_state() -> dict[str, Any]:
    """This process's global generators (python, numpy, torch CPU and CUDA) as plain data and
    tensors (``weights_only``-loadable), read under the same lock as :func:`seeded_global_generator`."""
    with _GLOBAL_GENERATOR:
        version, words, gauss = random.getstate()
        kind, keys, position, has_gauss, cached = np.random.get_state()
        state: dict[str, Any] = {
            "python": [version, list(words), gauss],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state


def present_cuda_states(states: Sequence[torch.Tensor], device_count: int) -> list[torch.Tensor]:
    """The saved per-GPU generator ``states`` of the ``device_count`` GPUs this process sees (GPU i
    gets state i): a process that sees fewer GPUs than the one that saved them restores those it has,
    one that sees more leaves the others as they are."""
    return [state.cpu() for state in states[:device_count]]


def restore_global_rng_state(state: dict[str, Any]) -> None:
    """Set the global generators to :func:`global_rng_state`'s ``state``, under the lock (a thread
    worker restoring them never lands inside another's seeded block); CUDA's only for the GPUs
    visible (:func:`present_cuda_states`)."""
    with _GLOBAL_GENERATOR:
        version, words, gauss = state["python"]
        random.setstate((version, tuple(words), gauss))
        kind, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
        torch.set_rng_state(state["torch"].cpu())
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(present_cuda_states(state["cuda"], torch.cuda.device_count()))
