"""One error type: every refusal is a `SweeperError` naming a field, printed once by `sweeper.cli.main`
as one line, exit 2; no command catches it or tells errors apart by their class names."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import sweeper
import sweeper.cli.plan
from sweeper.cli import main
from sweeper.errors import SweeperError

PACKAGE = Path(sweeper.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
SKIPPED = ("sweeper.__main__", "sweeper.db.migrations")
"""Modules not imported here: the entry point runs the CLI, Alembic's env runs only inside a migration."""


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def error_classes() -> list[type[SweeperError]]:
    """SweeperError and every subclass the package defines (each module imported once)."""
    for info in pkgutil.walk_packages([str(PACKAGE)], "sweeper."):
        if not info.name.startswith(SKIPPED):
            importlib.import_module(info.name)
    return [SweeperError, *dict.fromkeys(c for c in _subclasses(SweeperError) if c.__module__.startswith("sweeper."))]


CLASSES = error_classes()


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    """Every call `name(...)` or `x.name(...)` in the package's source."""
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
                if called == name:
                    found.append((path, node))
    return found


def test_the_walk_finds_the_errors_of_every_layer():
    names = {c.__name__ for c in CLASSES}
    assert {"ConfigError", "StudyError", "StorageError", "QueryError", "QueryRefused", "StudyNotFound", "BoundaryError",
            "BindRefused", "FitError", "PredictorError", "EvalError", "LeaseHeld", "SpecMismatch"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_names_a_field(cls):
    """A class with a default field may be raised with a message alone; any other must be given a
    (non-empty) field at every call in the package."""
    if cls.field_default:
        assert cls("what is wrong").field == cls.field_default
        return
    calls = _calls(cls.__name__)
    assert calls or cls is SweeperError, f"{cls.__name__} is never raised"
    for path, call in calls:
        where = f"{path.relative_to(PACKAGE.parent)}:{call.lineno}"
        field = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg in ("field", "field_name")), None)
        assert field is not None and len(call.args) + len(call.keywords) >= 2, f"{where}: {cls.__name__} without a field"
        assert not (isinstance(field, ast.Constant) and not field.value), f"{where}: {cls.__name__} with an empty field"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_main_prints_each_error_as_one_line_and_exits_2(cls, monkeypatch, capsys):
    error = cls("--some-flag", "what is wrong;\n\twhat is allowed")  # a driver's message may span lines

    def refuse(args):
        raise error

    monkeypatch.setattr(sweeper.cli.plan, "cmd_plan", refuse)
    assert main(["plan", "study.toml"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("sweeper: error: ") and "--some-flag: what is wrong; what is allowed" in err, err


def test_an_internal_error_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(sweeper.cli.plan, "cmd_plan", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["plan", "study.toml"])


CLI_SOURCES = sorted((PACKAGE / "cli").glob("*.py"))


@pytest.mark.parametrize("path", CLI_SOURCES, ids=lambda p: p.name)
def test_no_command_tells_errors_apart_by_class_name(path):
    text = path.read_text(encoding="utf-8")
    for word in ("__name__", "__class__", "__qualname__"):
        assert word not in text, f"{path.name} reads {word}"


@pytest.mark.parametrize("path", CLI_SOURCES, ids=lambda p: p.name)
def test_only_main_catches_a_sweeper_error(path):
    names = {c.__name__ for c in CLASSES}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef):
            for handler in (n for n in ast.walk(node) if isinstance(n, ast.ExceptHandler) and n.type is not None):
                types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                caught = {t.id if isinstance(t, ast.Name) else getattr(t, "attr", None) for t in types} & names
                if caught:
                    assert (path.name, node.name) == ("__init__.py", "main"), f"{path.name}:{handler.lineno} catches {caught}"
