"""Package extras: the parts of the service install separately, and say what is missing."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_the_core_needs_neither_torch_nor_docker_nor_flask() -> None:
    names = {r.split("[")[0].split(">")[0].split("=")[0].split("<")[0]
             for r in _project()["dependencies"]}
    assert not names & {"torch", "squidpy", "docker", "flask", "waitress", "combat"}
    extras = _project()["optional-dependencies"]
    assert any(r.startswith("torch") for r in extras["science"])
    assert any(r.startswith("docker") for r in extras["worker"])
    assert any(r.startswith("flask") for r in extras["web"])
    assert extras["all"] == ["spared-bench[web,worker,science]"]


def test_a_missing_extra_is_named_not_a_traceback(tmp_path: Path) -> None:
    """`data release` without torch (a core-only install) says which extra to install."""
    src = tmp_path / "src"
    script = (
        "import importlib.abc, sys\n"
        "class NoTorch(importlib.abc.MetaPathFinder):  # as if 'science' were not installed\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from evaluator.cli.app import main\n"
        "from evaluator.datasets.synthetic import generate\n"
        f"generate('tiny', {str(src)!r}, datasets=['villacampa_lung_organoid'])\n"
        f"sys.exit(main(['data', 'release', {str(src / 'villacampa_lung_organoid.h5ad')!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=300,
                            env={"SPARED_BENCH_HOME": str(tmp_path / "home"),
                                 "PATH": "/usr/bin:/bin", "SPARED_BENCH_PROGRESS": "0"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "needs the 'science' extra" in result.stderr
    assert "pip install 'spared-bench[science]'" in result.stderr
    assert "Traceback" not in result.stderr
