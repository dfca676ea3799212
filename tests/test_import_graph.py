"""The modules of edgeinfer/ depend on each other one way: their import graph has no cycle.

Every import counts, wherever it is written: at the top of a module, inside a function (the usual way to
hide a cycle) or under ``if TYPE_CHECKING:``. A cycle means two modules cannot be read, tested or changed
one without the other.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "edgeinfer"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(source: str, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that ``source`` (the text of ``module``) imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package of this module, up level - 1 more
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            for alias in node.names:  # `from pkg import sub` imports the module pkg.sub
                found.add(f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin)
    return {name for name in found if name in modules and name != module}


def import_graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module → the modules it imports, for ``sources``: module name → (its text, whether a package)."""
    modules = set(sources)
    return {name: _imported(text, name, is_package, modules) for name, (text, is_package) in sources.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or through others (the strongly connected
    components of more than one module, by Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_edgeinfer_has_no_import_cycle():
    sources = {
        _module_name(path): (path.read_text(), path.name == "__init__.py")
        for path in sorted((ROOT / PACKAGE).rglob("*.py"))
    }
    graph = import_graph(sources)
    assert graph["edgeinfer.cli"], "the graph sees no import of the CLI: the check reads nothing"
    assert cycles(graph) == [], "modules that import each other: " + "; ".join(map(", ".join, cycles(graph)))


def test_the_check_finds_each_kind_of_cycle():
    examples = {
        "top level": {"edgeinfer.a": "import edgeinfer.b", "edgeinfer.b": "from edgeinfer.a import x"},
        "function-local": {
            "edgeinfer.a": "from edgeinfer import b",
            "edgeinfer.b": "def f():\n    from edgeinfer.a import x",
        },
        "type checking": {
            "edgeinfer.a": "from edgeinfer.b import x",
            "edgeinfer.b": "import typing\nif typing.TYPE_CHECKING:\n    from edgeinfer.a import Y",
        },
        "relative, three modules": {
            "edgeinfer.p": ("from . import a", True),
            "edgeinfer.p.a": "from .b import x",
            "edgeinfer.p.b": "from .. import p",
        },
    }
    for kind, modules in examples.items():
        sources = {name: text if isinstance(text, tuple) else (text, False) for name, text in modules.items()}
        assert cycles(import_graph(sources)) == [sorted(modules)], kind
    one_way = {"edgeinfer.a": ("import edgeinfer.b", False), "edgeinfer.b": ("import numpy", False)}
    assert cycles(import_graph(one_way)) == []
