"""Architecture rules the code base keeps, checked on what the code imports (every import
statement, at module level or inside functions), and on what a fresh interpreter loads."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "resist"

# The package's rooms (top-level modules and subpackages), lowest layer first. A room may import
# rooms of its own layer or below, never above, and the rooms' import graph has no cycle.
LAYERS = [
    {"errors", "seeding", "run_dir"},
    {"generators", "checkpoints"},
    {"models", "decomposition"},
    {"config"},
    {"comm", "data", "logging", "analysis"},
    {"protocols"},
    {"train"},
    {"launch"},
    {"run", "bench", "worker", "compare"},
]
LAYER = {room: level for level, rooms in enumerate(LAYERS) for room in rooms}

# Third-party modules (and those that load them, like torch.nn.parallel -> torch.distributed) that
# only one room may import.
CONFINED = {
    "torch.distributed": "comm",
    "torch.nn.parallel": "comm",
    "omegaconf": "config",
    "hydra": "config",
    "matplotlib": "analysis",
}


def _room(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _sources() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE]


def _room_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in _sources():
        for name in _imports(path):
            if name.startswith("resist."):
                target = name.split(".")[1]
                if target != _room(path) and target in LAYER:
                    graph[_room(path)].add(target)
    return graph


def test_every_room_has_a_layer():
    assert {_room(p) for p in _sources()} <= set(LAYER)


def test_no_room_imports_a_higher_one():
    upward = sorted(f"{a} -> {b}" for a, targets in _room_graph().items() for b in targets if LAYER[b] > LAYER[a])
    assert upward == []


def test_the_rooms_import_graph_has_no_cycle():
    graph, state = _room_graph(), {}

    def visit(room: str, trail: list[str]) -> None:
        if state.get(room) == "done":
            return
        assert state.get(room) != "open", f"import cycle: {' -> '.join([*trail, room])}"
        state[room] = "open"
        for target in sorted(graph.get(room, ())):
            visit(target, [*trail, room])
        state[room] = "done"

    for room in sorted(LAYER):
        visit(room, [])


def test_confined_libraries_are_imported_in_their_room_only():
    offenders = sorted(
        f"{path.relative_to(REPO)} imports {name}"
        for path in _sources()
        for name in _imports(path)
        for confined, room in CONFINED.items()
        if (name == confined or name.startswith(confined + ".")) and _room(path) != room
    )
    assert offenders == []


def test_validating_a_composed_config_loads_no_torch():
    """One-line config errors come before torch's multi-second import: a fresh interpreter that
    imports resist.config, composes the embedded default and the paper's S = 8 ResIST recipe and
    validates them has not loaded torch (nor anything that touches devices)."""
    script = f"""
import sys
from hydra import compose, initialize_config_dir
from resist.config import register_schemas, to_typed_config, validate
register_schemas()
with initialize_config_dir(config_dir={str(REPO / "conf")!r}, version_base="1.3"):
    for overrides in ([], ["+experiment=cifar10_resist", "num_workers=8", "launcher=slurm"]):
        validate(to_typed_config(compose("config", overrides=overrides)))
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "torchvision", "numpy")))
print(loaded)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# Callbacks whose positional signature their caller fixes (torch.multiprocessing: fn(rank, *args)).
FIXED_SIGNATURES = {"_process_entry"}


def test_functions_with_more_than_three_parameters_take_them_by_keyword():
    offenders = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name not in FIXED_SIGNATURES:
                positional = [a.arg for a in [*node.args.posonlyargs, *node.args.args] if a.arg not in ("self", "cls")]
                if len(positional) > 3:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}({', '.join(positional)})")
    assert offenders == []


def test_no_file_is_longer_than_350_lines():
    assert [str(p.relative_to(REPO)) for p in _sources() if len(p.read_text(encoding="utf-8").splitlines()) > 350] == []
