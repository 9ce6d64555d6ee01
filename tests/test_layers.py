"""The package's architecture, checked from its source: layers import one way, and nothing cycles.

Layers, bottom to top (a module may import its own layer and the ones below it, never above):

    errors          the one error type
    jsonio, provenance, outcomes
    config          frozen, validated hyperparameter dataclasses
    tasks           seeded sequence tasks
    engine          population engine, reference loop, train and bench
    study           study files and run files
    db              the trial database
    warn            early-warning predictors
    analysis        boundary fits, the paper's figures and tables
    sweep           Ray Tune driver and packs, Optuna search
    dashboard       Dash app and offline report
    cli             the `sweeper` command
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sweeper"
LAYERS = (
    ("", "errors"),
    ("jsonio", "provenance", "outcomes"),
    ("config",),
    ("tasks",),
    ("engine",),
    ("study",),
    ("db",),
    ("warn",),
    ("analysis",),
    ("sweep",),
    ("dashboard",),
    ("cli", "__main__"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
TEST_ONLY = ("pytest", "playwright", "tests", "tools")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["sweeper", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(module: str) -> list[tuple[str, bool]]:
    """(imported name, at module level?) for every import statement in `module`."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            found.append((name, id(node) in top))
            found += [(f"{name}.{alias.name}", id(node) in top) for alias in node.names
                      if f"{name}.{alias.name}" in MODULES]
    return found


def _own(name: str) -> str | None:
    """The sweeper module that `name` refers to (a package, a module, or a name inside one)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_is_in_a_layer():
    assert {_layer(m) for m in MODULES} <= set(RANK), {_layer(m) for m in MODULES} - set(RANK)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module):
    upward = []
    for name, _ in _imports(module):
        target = _own(name) if name.startswith("sweeper") else None
        if target and RANK[_layer(target)] > RANK[_layer(module)]:
            upward.append(f"{module} ({_layer(module)}) imports {target} ({_layer(target)})")
    assert not upward, upward


@pytest.mark.parametrize("module", sorted(MODULES))
def test_the_package_imports_no_test_only_dependency(module):
    bad = [name for name, _ in _imports(module) if name.split(".")[0] in TEST_ONLY]
    assert not bad, f"{module} imports {bad}"


def test_no_import_cycle_at_module_level():
    graph = {m: {t for name, top in _imports(m) if top and name.startswith("sweeper")
                 if (t := _own(name)) and t != m} for m in MODULES}
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The layer test is not vacuous: a db module importing the sweep layer is caught."""
    fake = tmp_path / "fake.py"
    fake.write_text("from sweeper.sweep import driver\n")
    monkeypatch.setitem(MODULES, "sweeper.db.fake", fake)
    with pytest.raises(AssertionError, match="imports sweeper.sweep"):
        test_imports_go_down_the_layers("sweeper.db.fake")
