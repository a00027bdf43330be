"""The test suite's own layout: shared helpers live in shared modules (tests/helpers.py,
tests/conftest.py, tests/generated_runs.py, tests/wandb_records.py), so no test module imports from
another test module (whose tests would then run, or break, with it)."""

from __future__ import annotations

import ast

from tests.conftest import REPO
from tests.helpers import imported_names

TESTS = REPO / "tests"


def _is_test_module(name: str) -> bool:
    """Whether the dotted module ``name`` is a test module (``tests.<...>.test_<...>``)."""
    parts = name.split(".")
    return parts[0] == "tests" and any(part.startswith("test_") for part in parts[1:])


def test_no_test_module_imports_another_test_module():
    offenders = sorted(
        f"{path.relative_to(REPO)} imports {name}"
        for path in TESTS.rglob("*.py")
        for name in imported_names(path)
        if _is_test_module(name)
    )
    assert offenders == []


def test_no_test_module_uses_relative_imports():
    """Relative imports would slip past the check above; the suite imports ``tests.<module>``."""
    offenders = sorted(
        str(path.relative_to(REPO))
        for path in TESTS.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    )
    assert offenders == []
