"""No import circle among the package's modules: the module-level imports (TYPE_CHECKING ones
included) form a graph without cycles, so every module can be read, and imported, on its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "musicrl"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.Module, name: str, modules: set[str]) -> set[str]:
    """The package modules a module imports at module level (not inside functions)."""
    found = set()
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.If):  # TYPE_CHECKING blocks count
            nodes += node.body + node.orelse
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported(ast.parse(p.read_text()), module_name(p), modules) for p in paths}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_in_the_package():
    edges = graph()
    assert "musicrl.runfiles" in edges["musicrl.training"] and "musicrl.music.audio" in edges["musicrl.music.features"]
    assert edges["musicrl.profiles"] == {"musicrl.users"}  # the profile table reads no registry, no baseline
    assert not {"musicrl.multiseed", "musicrl.devicetrainer", "musicrl.training"} & edges["musicrl.runfiles"]  # RunSpec: a value
    assert edges["musicrl.algorithms"] <= {"musicrl.users", "musicrl.envs"}  # the tables import no algorithm, no trainer
    assert cycle(edges) is None, " -> ".join(cycle(edges) or [])
