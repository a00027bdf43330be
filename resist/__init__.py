"""resist: ResIST (layer-wise decomposition of pre-activation ResNets) with data-parallel and
local-SGD baselines, on one torch.distributed engine.

Importing the package checks that this Python has its dependencies (a system Python started from
the repository root finds the ``resist`` folder but not the venv's packages): without them every
entry point stops with one line saying which interpreter to use."""

import importlib.util
import sys

__version__ = "0.1.0"

_REQUIRED = ("torch", "hydra", "omegaconf")

if any(importlib.util.find_spec(name) is None for name in _REQUIRED):
    _missing = ", ".join(name for name in _REQUIRED if importlib.util.find_spec(name) is None)
    print(
        f"resist: error: this Python ({sys.executable}) does not have the project's packages ({_missing} missing) "
        "(fix: activate the project's venv with `source .venv/bin/activate`, or run `.venv/bin/python -m ...`; "
        "to install: python3.11 -m venv .venv && .venv/bin/pip install -e '.[dev]')",
        file=sys.stderr,
    )
    sys.exit(2)
