"""Architecture rules the code base keeps."""

from __future__ import annotations

import ast

from tests.conftest import REPO

PACKAGE = REPO / "resist"


def _imported_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_only_the_comm_package_imports_torch_distributed():
    offenders = sorted(
        str(path.relative_to(REPO))
        for path in PACKAGE.rglob("*.py")
        if path.parent.name != "comm"
        and any(
            name == "torch.distributed" or name.startswith("torch.distributed.") for name in _imported_modules(path)
        )
    )
    assert offenders == []


def test_the_pure_core_does_not_import_torch():
    """Config validation and architecture specs load without torch (fast one-line errors)."""
    for module in ("config.py", "errors.py", "models/spec.py", "launch/env.py", "comm/cost.py"):
        names = set(_imported_modules(PACKAGE / module))
        assert not any(name == "torch" or name.startswith("torch.") for name in names), module
