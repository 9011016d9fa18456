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
