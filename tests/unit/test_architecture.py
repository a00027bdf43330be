"""Architecture rules the code base keeps, checked on what the code imports (every import
statement, at module level or inside functions), and on what a fresh interpreter loads."""

from __future__ import annotations

import ast
import contextlib
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import imported_names

PACKAGE = REPO / "resist"

# The package's rooms (top-level modules and subpackages), lowest layer first. A room may import
# rooms of its own layer or below, never above, and the rooms' import graph has no cycle.
LAYERS = [
    {"errors", "seeding", "run_dir", "paper"},
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


def _sources() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE]


def _room_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in _sources():
        for name in imported_names(path):
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


def _module_name(path: Path, root: Path) -> str:
    """The dotted name of module file ``path`` under ``root`` (a package is its ``__init__.py``)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, module: str, files: dict[str, Path]) -> str:
    """The absolute module name of ``from <node.module> import ...`` written in ``module``."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if files[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _dunder_all(tree: ast.Module) -> list[str]:
    """A module's literal ``__all__`` (empty when it has none)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            with contextlib.suppress(ValueError):
                return list(ast.literal_eval(node.value))
    return []


def _reexports(package: str, files: dict[str, Path], trees: dict[str, ast.Module]) -> dict[str, str]:
    """The names ``package``'s ``__init__`` imports at module level from its own package's modules
    (``from package.mod import name``, or ``*`` with ``mod``'s literal ``__all__``) -> that module."""
    found: dict[str, str] = {}
    for node in trees[package].body:
        if not isinstance(node, ast.ImportFrom):
            continue
        source = _absolute(node, package, files)
        if not source.startswith(package + ".") or source not in files:
            continue
        for alias in node.names:
            names = _dunder_all(trees[source]) if alias.name == "*" else [alias.asname or alias.name]
            found.update(dict.fromkeys(names, source))
    return found


def module_graph(package: Path) -> dict[str, set[str]]:
    """The file-level import graph of the package in directory ``package``: each module -> the
    package's modules it imports, at module level, inside functions or under ``if TYPE_CHECKING:``.

    ``import a.b`` and ``from a import b`` (``b`` a module file) import ``a.b``; ``from a import name``
    imports ``a`` (its ``__init__.py`` when a package), except that a name the package's ``__init__``
    re-exports from one of its own modules imports that module: an ``__init__`` that re-exports is a
    doorway, not a dependency, so ``resist/config/schema.py`` importing ``from resist.config import X``
    (X re-exported from ``resist.config.enums``) is no cycle with ``resist/config/__init__.py``, which
    imports schema. A name the ``__init__`` defines, or imports from elsewhere, still makes an edge to
    it. The package ``__init__`` files Python runs before a submodule (``a`` for ``a.b``) are not
    edges: every package whose ``__init__`` imports its modules would otherwise be a cycle."""
    root = package.parent
    files = {_module_name(p, root): p for p in sorted(package.rglob("*.py"))}
    trees = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in files.items()}
    reexports = {name: _reexports(name, files, trees) for name, path in files.items() if path.name == "__init__.py"}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for module, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                graph[module].update(alias.name for alias in node.names if alias.name in files)
            elif isinstance(node, ast.ImportFrom) and (source := _absolute(node, module, files)) in files:
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    graph[module].add(
                        submodule if submodule in files else reexports.get(source, {}).get(alias.name, source)
                    )
        graph[module].discard(module)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as the path that closes it (``[a, b, a]``), or None; the first one a
    depth-first search in sorted order meets."""
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        if state.get(node) == "open":
            return [*trail[trail.index(node) :], node]
        if state.get(node) == "done":
            return None
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if (cycle := visit(target, [*trail, node])) is not None:
                return cycle
        state[node] = "done"
        return None

    for node in sorted(graph):
        if (cycle := visit(node, [])) is not None:
            return cycle
    return None


def type_checking_imports(package: Path) -> list[str]:
    """``path:line module`` of every import under ``if TYPE_CHECKING:`` in the package in directory
    ``package`` (such an import hides a dependency, typically one half of a cycle, from the interpreter)."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            test = node.test if isinstance(node, ast.If) else None
            if getattr(test, "id", getattr(test, "attr", None)) != "TYPE_CHECKING":
                continue
            for inner in (n for statement in node.body for n in ast.walk(statement)):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    names = [a.name for a in inner.names] if isinstance(inner, ast.Import) else [inner.module or "."]
                    found.append(f"{path.relative_to(package.parent)}:{inner.lineno} {', '.join(names)}")
    return found


def test_the_modules_import_graph_has_no_cycle():
    cycle = find_cycle(module_graph(PACKAGE))
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_no_module_imports_under_type_checking():
    """Every dependency is a real import: none is hidden from the interpreter (and from
    :func:`module_graph`'s readers) behind ``if TYPE_CHECKING:``."""
    assert type_checking_imports(PACKAGE) == []


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root / "pkg"


@pytest.mark.parametrize(
    "back_import",
    [
        "from pkg.a import A\n",
        "def later():\n    from pkg.a import A\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n",
        "from . import a\n",
    ],
    ids=["module level", "in a function", "under TYPE_CHECKING", "relative"],
)
def test_a_two_file_circle_is_found(tmp_path, back_import):
    package = _write_package(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "import pkg.b\n", "pkg/b.py": back_import})
    assert find_cycle(module_graph(package)) == ["pkg.a", "pkg.b", "pkg.a"]
    assert len(type_checking_imports(package)) == ("TYPE_CHECKING" in back_import)


def test_an_init_re_exporting_its_own_modules_is_no_circle_but_one_defining_names_is(tmp_path):
    package = _write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from pkg.sub.enums import Color\nfrom pkg.sub.schema import *\n",
            "pkg/sub/enums.py": "class Color: ...\n",
            "pkg/sub/schema.py": "from pkg.sub import Color\n__all__ = ['Config']\nclass Config: ...\n",
            "pkg/user.py": "from pkg.sub import Color, Config\n",
        },
    )
    graph = module_graph(package)
    assert (graph["pkg.sub.schema"], graph["pkg.user"]) == ({"pkg.sub.enums"}, {"pkg.sub.enums", "pkg.sub.schema"})
    assert find_cycle(graph) is None
    (package / "sub" / "__init__.py").write_text("from pkg.sub.enums import Color\nVERSION = 1\n")
    (package / "sub" / "enums.py").write_text("from pkg.sub import VERSION\nclass Color: ...\n")
    assert find_cycle(module_graph(package)) == ["pkg.sub", "pkg.sub.enums", "pkg.sub"]


def test_confined_libraries_are_imported_in_their_room_only():
    offenders = sorted(
        f"{path.relative_to(REPO)} imports {name}"
        for path in _sources()
        for name in imported_names(path)
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


def test_no_two_modules_share_a_file_name():
    """A module's file name says which module it is: ``plan.py`` or ``worker.py`` in two rooms would not."""
    names = sorted(p.name for p in _sources() if p.name != "__init__.py")
    assert sorted({name for name in names if names.count(name) > 1}) == []
