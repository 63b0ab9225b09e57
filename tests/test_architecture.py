"""The shape of the code: no import cycles, small functions, and a README map that matches the tree."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from digest.config import PROJECT_ROOT

PACKAGES = ("digest", "workers")
MAX_FUNCTION_LINES = 40
# Frozen history: a migration is one long upgrade step, written once and never changed.
NOT_MEASURED = ("digest/migrations/",)


def module_files() -> dict[str, Path]:
    """Every module of our packages, by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported(tree: ast.AST, modules: set[str]) -> set[str]:
    """Our modules a file imports anywhere (at the top or inside a function: both can form a cycle)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from digest import compose` imports the module digest.compose; `from digest.x import y` digest.x.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
            names.add(node.module)
    return {_owner(name, modules) for name in names if _owner(name, modules)}


def _owner(name: str, modules: set[str]) -> str:
    """The longest module of ours that `name` is or lies in ('' if none)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return ""


@cache
def import_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports (a package's own name, as in `from digest import x`, is
    not an edge to the package: only its submodule is)."""
    files = module_files()
    modules = set(files)
    graph = {}
    for name, path in files.items():
        targets = imported(ast.parse(path.read_text(), str(path)), modules)
        graph[name] = {t for t in targets if t != name and t not in PACKAGES}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (each a sorted list)."""
    reach = {node: reachable(graph, node) for node in graph}
    groups = {frozenset({n, *(m for m in reach[n] if n in reach.get(m, set()))}) for n in graph if n in reach[n]}
    return sorted(sorted(group) for group in groups)


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_are_read_from_every_statement() -> None:
    tree = ast.parse("import digest.plan\nfrom digest import compose\ndef f():\n    from digest.send import x\n")
    assert imported(tree, {"digest", "digest.plan", "digest.compose", "digest.send"}) == {
        "digest",
        "digest.plan",
        "digest.compose",
        "digest.send",
    }


def test_no_import_cycles_in_digest_and_workers() -> None:
    graph = import_graph()
    assert "digest.pipeline" in graph and graph["digest.pipeline"] >= {"digest.plan", "digest.compose"}
    assert cycles(graph) == []


def test_the_web_app_never_imports_the_workers_package() -> None:
    graph = import_graph()
    web = [name for name in graph if name.startswith("digest.")]
    assert {name: sorted(t for t in graph[name] if t.startswith("workers")) for name in web} == {n: [] for n in web}


def functions() -> Iterator[tuple[str, int]]:
    """`path:line name` and length in lines of every function in our packages (nested ones too)."""
    for path in module_files().values():
        where = str(path.relative_to(PROJECT_ROOT))
        if where.startswith(NOT_MEASURED):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                yield f"{where}:{node.lineno} {node.name}", node.end_lineno - node.lineno + 1


def test_functions_are_small() -> None:
    lengths = dict(functions())
    assert len(lengths) > 300  # the walk saw the code
    assert {name: n for name, n in lengths.items() if n > MAX_FUNCTION_LINES} == {}


@cache
def readme_map() -> str:
    text = (PROJECT_ROOT / "README.md").read_text()
    match = re.search(r"^### Module map\n(.*?)^#", text, re.S | re.M)
    assert match, "README.md has no '### Module map' section"
    return match.group(1)


MAPPED = sorted(n for n in module_files() if "migrations" not in n and n not in PACKAGES and "__main__" not in n)


@pytest.mark.parametrize("module", MAPPED)
def test_the_readme_map_names_every_module(module: str) -> None:
    leaf = module.rsplit(".", 1)[-1]
    assert re.search(rf"\b{re.escape(leaf)}(\.py|/)", readme_map()), f"README module map does not mention {module}"
