"""The house's rules, checked on the code itself: one-way layers, RQ in one module, short
functions. (``make lint`` also runs import-linter's contracts from pyproject.toml.)"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYERS = ("core", "workers", "service")  # each may import only those before it
MAX_FUNCTION_LINES = 60


def modules(package: str) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def imported(tree: ast.Module) -> Iterator[str]:
    """Every module name a file imports, at any depth (lazy imports in functions too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            # ``from service import app`` imports the module service.app too.
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


@pytest.mark.parametrize("package", LAYERS)
def test_imports_point_down_only(package: str) -> None:
    above = set(LAYERS[LAYERS.index(package) + 1 :])
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path, tree in modules(package)
        for name in imported(tree)
        if name.split(".")[0] in above
    ]
    assert wrong == []


def test_rq_is_named_in_one_module() -> None:
    users = {
        str(path.relative_to(ROOT))
        for package in LAYERS
        for path, tree in modules(package)
        if any(name.split(".")[0] == "rq" for name in imported(tree))
    }
    assert users == {"core/queues.py"}


def test_no_function_is_over_60_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)"
        for package in LAYERS
        for path, tree in modules(package)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_service_holds_no_module_only_workers_use() -> None:
    """A module of service/ that workers need would be a kernel or worker module instead;
    here that shows as a worker importing service/, so also every service module must be
    imported by service/ itself (or be an entry point)."""
    entry_points = {"service.__main__", "service.__init__", "service.cli"}
    used = {name for _, tree in modules("service") for name in imported(tree)}
    orphans = [
        module
        for path, _ in modules("service")
        if (module := f"service.{path.stem}") not in entry_points and module not in used
    ]
    assert orphans == []
