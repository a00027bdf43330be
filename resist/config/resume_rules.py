"""What a resumed run may change (pure).

A run resumes with its saved config. Only keys that cannot change its trajectory may be given on
the command line with ``resume=<run dir>``: how long it trains (``train.epochs``,
``train.max_steps``), where decoded images are kept, where and how it checkpoints, logs and
launches, and the device type it trains on (``device``: the explicit request to continue on another
one, after which the run is no longer bit for bit the uninterrupted one). Everything else is the
trajectory, recorded in every checkpoint's manifest and compared on resume.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from resist.config.schema import ConfigError

RESUMABLE_KEYS = (
    "resume",
    "train.epochs",
    "train.max_steps",
    "dataset.cache_dir",
    "device",
    "checkpoint",
    "logger",
    "launcher",
    "hydra",
    "dry_run",
)
"""Keys (and the subtrees under them) a resume may override."""


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def override_key(override: str) -> str:
    """``+train.epochs=3`` -> ``train.epochs``; ``logger=wandb`` -> ``logger``."""
    return override.split("=", 1)[0].lstrip("+~")


def check_resume_overrides(overrides: Iterable[str]) -> list[str]:
    """The keys of the command-line ``overrides`` a resume applies; raises :class:`ConfigError` on the
    first that would change the run's trajectory."""
    keys = []
    for override in overrides:
        key = override_key(override)
        if not _under(key, RESUMABLE_KEYS):
            raise ConfigError(
                key,
                f"'{override}' would change the trajectory of the run being resumed (a resume may change "
                f"only {', '.join(k for k in RESUMABLE_KEYS if k not in ('resume', 'hydra'))})",
                f"drop '{override}', or start a new run with it",
            )
        if key != "resume" and not key.startswith("hydra"):
            keys.append(key)
    return keys


def trajectory(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a resolved config that determine a run's trajectory (all but the resumable keys)."""

    def strip(node: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        kept = {}
        for key, value in node.items():
            full = f"{prefix}{key}"
            if _under(full, RESUMABLE_KEYS):
                continue
            kept[key] = strip(value, f"{full}.") if isinstance(value, Mapping) else value
        return kept

    return strip(resolved, "")


def first_difference(first: Any, second: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    """The first key (dotted) whose value differs between two configs, with its two values; None if
    they are equal."""
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        for key in sorted(set(first) | set(second), key=str):
            found = first_difference(first.get(key), second.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    return None if first == second else (prefix.rstrip("."), first, second)
