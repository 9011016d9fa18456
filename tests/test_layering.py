"""The layers of docs/ARCHITECTURE.md ("Layers and imports"): imports go one way, lower
packages never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Lower rank = lower layer. A package may import only packages of a strictly lower rank.
RANKS = {
    "core": 0,
    "completion": 1,
    "datasets": 2,
    "contract": 3,
    "runners": 4,
    "scoring": 4,
    "jobs": 5,
    "store": 5,
    "orchestrator": 6,
    "leaderboard": 7,
    "cli": 8,
}


def _package_of(path: Path) -> str | None:
    rel = path.relative_to(ROOT).parts
    if rel[0] == "leaderboard":
        return "leaderboard"
    if rel[0] == "evaluator" and len(rel) > 2:
        return rel[1]
    return None


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _target(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "leaderboard":
        return "leaderboard"
    if parts[0] == "evaluator" and len(parts) > 1:
        return parts[1]
    return None


SOURCES = sorted((ROOT / "evaluator").rglob("*.py")) + sorted((ROOT / "leaderboard").rglob("*.py"))


def test_every_package_has_a_rank() -> None:
    packages = {p.name for p in (ROOT / "evaluator").iterdir()
                if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages | {"leaderboard"} == set(RANKS)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_down_the_layers(path: Path) -> None:
    source = _package_of(path)
    if source is None:
        return
    upward = [m for m in _imports(path)
              if (t := _target(m)) is not None and t != source and RANKS[t] >= RANKS[source]]
    assert not upward, f"{source} (rank {RANKS[source]}) imports higher or equal layers: {upward}"


def test_submission_sdk_imports_nothing_of_the_evaluator() -> None:
    for path in (ROOT / "submissions").rglob("*.py"):
        assert not [m for m in _imports(path) if m.split(".")[0] in {"evaluator", "leaderboard"}]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_graph() -> dict[str, set[str]]:
    """Edges module -> module of every import between the project's modules (local ones too)."""
    modules = {_module_name(p): p for p in SOURCES}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported in _imports(path):
            # "from a.b import c" names module a.b.c when that is a module, else a.b
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(f"{target}."):
                graph[name].add(target)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    if sub in modules and sub != name:
                        graph[name].add(sub)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles_between_modules() -> None:
    """docs/ARCHITECTURE.md: the structure drawn from the imports (local ones included) is a
    tree of layers with no circle, inside a package as between packages."""
    # A package's __init__ re-exports its modules: edges into an __init__ from its own
    # submodules are the package's public surface, not a circle of the design.
    graph = {name: {t for t in targets if not name.startswith(f"{t}.")}
             for name, targets in _module_graph().items()}
    assert _cycles(graph) == []


def test_the_circle_check_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
