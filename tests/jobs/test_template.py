"""The submission template builds outside this repository: `spared-bench template DIR`, then
`docker build --network none DIR` FROM the local base image, then `check` passes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "spared-bench")
BASE_IMAGE = f"spared-bench/base:{(REPO / 'images/base/offline/VERSION').read_text().strip()}"


def _cli(*argv: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *argv], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_template_refuses_to_overwrite(tmp_path: Path) -> None:
    import os

    env = dict(os.environ)
    first = _cli("template", str(tmp_path / "m"), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "Dockerfile", "README.md", "predict.py", "spared_sdk.py"]
    assert (tmp_path / "m" / "spared_sdk.py").read_bytes() == \
        (REPO / "submissions/sdk/spared_sdk.py").read_bytes()
    (tmp_path / "m" / "predict.py").write_text("# mine\n")
    again = _cli("template", str(tmp_path / "m"), env=env, cwd=tmp_path)
    assert again.returncode == 2
    assert "expected a new or empty folder, found Dockerfile, README.md, predict.py, " \
           "spared_sdk.py there already" in again.stderr
    assert (tmp_path / "m" / "predict.py").read_text() == "# mine\n"


@pytest.mark.docker
def test_template_builds_outside_the_repository_and_passes_check(
        bench_home: Path, tmp_path: Path) -> None:
    import os

    subprocess.run(["bash", str(REPO / "scripts/build_base_image.sh"), "--no-torch"],
                   check=True, capture_output=True, timeout=1800)
    env = {**os.environ, "SPARED_BENCH_HOME": str(bench_home), "SPARED_BENCH_PROGRESS": "0"}
    # An author's folder far from the repository, the command run from there.
    folder = tmp_path / "elsewhere" / "my-model"
    made = _cli("template", str(folder), env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    tag = f"spared-bench-test/template:{uuid.uuid4().hex[:8]}"
    try:
        built = subprocess.run(["docker", "build", "--network", "none", "--build-arg",
                                f"BASE_IMAGE={BASE_IMAGE}", "-t", tag, str(folder)],
                               cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert built.returncode == 0, built.stderr[-3000:]
        checked = _cli("check", tag, "--datasets", "MHCP1", "--no-baselines", env=env,
                       cwd=tmp_path)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "PASS  mirzazadeh_human_colon_p1/raw: MSE" in checked.stdout
        assert "PASS  mirzazadeh_human_colon_p1/spackle: MSE" in checked.stdout
        # The local runner from the author's folder works too (the SDK beside predict.py).
        local = _cli("check", "--runner", "local", f"python {folder / 'predict.py'}",
                     "--datasets", "MHCP1", "--tracks", "raw", "--no-baselines", env=env,
                     cwd=tmp_path)
        assert local.returncode == 0, local.stdout + local.stderr
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, check=False)
