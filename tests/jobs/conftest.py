"""Fixtures of the job pipeline tests: a store home holding the tiny release, baseline images."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BASELINES = ("mean", "knn", "ridge", "cnn-delta")


@pytest.fixture(scope="session")
def bench_home(tmp_path_factory: pytest.TempPathFactory, tiny_release) -> Path:
    """A SPARED_BENCH_HOME whose releases folder is the tiny release's (read-only use)."""
    home = tmp_path_factory.mktemp("bench_home")
    (home / "releases").symlink_to(tiny_release.root.parent, target_is_directory=True)
    return home


@pytest.fixture(scope="session")
def baseline_images() -> dict[str, str]:
    """Build (or find up to date) the four baseline images; return name -> tag."""
    result = subprocess.run(["bash", str(REPO / "scripts/build_baselines.sh")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return {name: f"spared-bench/baseline-{name}:1" for name in BASELINES}
