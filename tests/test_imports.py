"""The shape of the code, checked: which package may import which, and no import cycles.

The graph is read from the source (AST), imports inside functions included, so a lazy import
cannot hide an edge. Layers: the core (``calibration_policy`` minus ``default_plugins``) knows
neither its default plugins nor the UI; default plugins know no screen; nothing forms a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module of ours that ``path`` imports, anywhere in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):  # imports only a type checker runs are no edge at run time
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)  # `from . import hookspecs` names a module, `from .x import y` a name (dropped below)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in ("calibration_policy", "calibration_policy_ui")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    # A module importing its own package adds no edge: the package's __init__ already ran to reach it.
    return {
        name: {m for m in imports_of(path) if m in modules and not (name + ".").startswith(m + ".")}
        for name, path in modules.items()
    }


def layer(module: str) -> str:
    if module.startswith("calibration_policy_ui"):
        return "ui"
    if module.startswith("calibration_policy.default_plugins"):
        return "default_plugins"
    return "core"


FORBIDDEN = {("core", "default_plugins"), ("core", "ui"), ("default_plugins", "ui")}


def test_the_graph_is_read_from_every_module():
    edges = graph()
    assert "calibration_policy.pipeline" in edges or "calibration_policy.pipeline" in edges
    assert "calibration_policy.default_plugins.scoring_weights.flow" in edges
    # a lazy import inside a function counts: the panel loads the weights analysis that way
    assert any(target.startswith("calibration_policy.") for target in edges["calibration_policy_ui.router"])


@pytest.mark.parametrize("source, target", sorted(FORBIDDEN))
def test_no_forbidden_edge(source, target):
    bad = sorted(
        f"{a} -> {b}" for a, targets in graph().items() for b in targets if layer(a) == source and layer(b) == target
    )
    assert not bad, f"{source} must not import {target}:\n" + "\n".join(bad)


def test_no_import_cycle():
    edges = graph()
    # Importing a.b.c runs a/__init__ and a/b/__init__ first, unless the importer is inside them.
    for source, targets in edges.items():
        for target in list(targets):
            parent = target.rpartition(".")[0]
            while parent:
                if parent in edges and not (source + ".").startswith(parent + "."):
                    targets.add(parent)
                parent = parent.rpartition(".")[0]
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            pytest.fail("import cycle: " + " -> ".join(cycle))
