"""`data pull`: an author fetches the service's public training data and runs `check` on it.

Through the real web server (``spared-bench serve``) and the CLI as processes: what is offered
(training data only, never the hidden split), hash verification, resuming a stopped pull,
and `check` on the pulled copy.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.orchestrator.conftest import _release_into
from tests.orchestrator.served import free_port, served_app
from tests.store.dbsupport import REPO, sqlite_url

CLI = str(Path(sys.executable).parent / "spared-bench")
MEAN = "python submissions/baselines/mean/predict.py"
pytestmark = pytest.mark.slow
# The served service's job limits (its settings): what /api/limits, the guide and
# `check --server` must all say.
SERVICE_LIMITS = {"SPARED_BENCH_JOB_TIME_LIMIT_S": "123", "SPARED_BENCH_JOB_MEM_LIMIT_GB": "3",
                  "SPARED_BENCH_JOB_CPUS": "1", "SPARED_BENCH_JOB_GPUS": "1 test GPU"}
DUMP_LIMITS = """
import json, os, pathlib
import numpy as np
task = json.loads((pathlib.Path(os.environ["SPARED_INPUT_DIR"]) / "task.json").read_text())
out = pathlib.Path(os.environ["SPARED_OUTPUT_DIR"])
np.save(out / "predictions.npy", np.zeros((task["n_test_spots"], len(task["genes"])), "float32"))
(out / "model.json").write_text(json.dumps({"name": "limits", "parameters": {
    "time_limit_s": task["time_limit_s"], **task["limits"]}}))
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_release: Any) -> Iterator[tuple[str,
                                                                                       Any]]:
    """A served store with the tiny release published; yields (URL, release)."""
    from evaluator.core.settings import Settings
    from evaluator.orchestrator import Bench
    from evaluator.orchestrator.service import publish_release
    from evaluator.store import dispose_engines

    home = tmp_path_factory.mktemp("service")
    _release_into(home, tiny_release)
    env = {**os.environ, "SPARED_BENCH_HOME": str(home), "DATABASE_URL": sqlite_url(home),
           "QUEUE_URL": f"sqlite:///{home / 'queue.db'}", "OMP_NUM_THREADS": "1",
           **SERVICE_LIMITS}
    bench = Bench.open(Settings(home=home, database_url=env["DATABASE_URL"],
                                queue_url=env["QUEUE_URL"]))
    publish_release(bench, tiny_release.release_id, queue_baselines=False)
    bench.close()
    dispose_engines()
    with served_app(env, home) as url:
        yield url, tiny_release


def _pull(home: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "data", "pull", "--server", url, *args], cwd=REPO,
                          env={**os.environ, "SPARED_BENCH_HOME": str(home)},
                          capture_output=True, text=True, timeout=300)


def test_the_service_offers_training_data_only(service: tuple[str, Any]) -> None:
    url, release = service
    offer = requests.get(f"{url}/api/releases/current/public", timeout=10).json()
    assert offer["release_id"] == release.release_id and offer["partial"] is True
    names = set(offer["files"])
    assert names and all(n.startswith("public/") for n in names)
    assert all(n.endswith(("/train.h5ad", "/train_patches.npy")) for n in names)
    assert len(names) == sum(len(r.tracks) + 1 for r in release.manifest.datasets.values())
    base = f"{url}/api/releases/{release.release_id[:12]}/files"
    name = release.datasets[0]
    for hidden in (f"hidden/{name}/truth.h5ad", f"public/{name}/test_patches.npy",
                   f"public/{name}/test_inputs.h5ad", "manifest.json",
                   f"public/{name}/../../hidden/{name}/truth.h5ad", "%2e%2e/manifest.json"):
        answer = requests.get(f"{base}/{hidden}", timeout=10)
        assert answer.status_code == 404, hidden
        assert "truth" not in answer.text or "expected a file listed" in answer.text
    # One file whole and as a byte range (what a resumed pull asks for).
    rel = f"public/{name}/train_patches.npy"
    whole = requests.get(f"{base}/{rel}", timeout=10)
    assert whole.status_code == 200
    sha = hashlib.sha256(whole.content).hexdigest()
    assert sha == offer["files"][rel]["sha256"] == whole.headers["X-Content-SHA256"]
    part = requests.get(f"{base}/{rel}", headers={"Range": "bytes=100-"}, timeout=10)
    assert part.status_code == 206 and part.content == whole.content[100:]


def test_pull_then_check_on_the_pulled_copy(service: tuple[str, Any], tmp_path: Path) -> None:
    from evaluator.datasets.release import hashed_before, load_release

    url, release = service
    home = tmp_path / "author"
    result = _pull(home, url)
    assert result.returncode == 0, result.stderr
    pulled = load_release(release.release_id, home / "releases")
    assert pulled.manifest.partial
    for rel, entry in pulled.manifest.files.items():
        assert release.manifest.files[rel] == entry
        # hashed while fetched: recorded, so loading does not read the pixels a second time
        assert hashed_before(home / "releases", pulled.root / rel, entry.sha256)
    assert not list((pulled.root).rglob("truth.h5ad"))
    assert not list((pulled.root).rglob("test_*"))
    with pytest.raises(Exception, match="pulled copy"):
        pulled.truth_path(release.datasets[0])
    # Pulling again fetches nothing.
    again = _pull(home, url)
    assert again.returncode == 0 and "to fetch" not in again.stderr
    # check runs on it (validation data from the pulled training files).
    checked = subprocess.run(
        [CLI, "check", MEAN, "--runner", "local", "--release", release.release_id[:12],
         "--datasets", release.datasets[0]], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "SPARED_BENCH_HOME": str(home), "OMP_NUM_THREADS": "1"},
        timeout=600)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    assert "check passed" in checked.stdout
    # evaluate needs the hidden split, which a pulled copy does not hold: a clear error.
    evaluated = subprocess.run(
        [CLI, "evaluate", MEAN, "--runner", "local", "--release", release.release_id[:12],
         "--datasets", release.datasets[0]], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "SPARED_BENCH_HOME": str(home)}, timeout=600)
    assert evaluated.returncode == 2 and "pulled copy" in evaluated.stderr
    assert "Traceback" not in evaluated.stderr


def test_a_stopped_pull_resumes_and_a_wrong_byte_is_refused(service: tuple[str, Any],
                                                             tmp_path: Path) -> None:
    url, release = service
    name = release.datasets[0]
    rel = f"public/{name}/train_patches.npy"
    real = (release.root / rel).read_bytes()
    home = tmp_path / "author"
    part = home / "releases" / ".pull" / release.release_id / rel
    part.parent.mkdir(parents=True)
    part.write_bytes(real[:len(real) // 2])  # a pull stopped half way through this file
    result = _pull(home, url, "--datasets", name)
    assert result.returncode == 0, result.stderr
    assert "resuming at" in result.stderr
    assert (home / "releases" / release.release_id / rel).read_bytes() == real
    assert not part.exists()
    # A corrupt partial file: the pull fails naming the file and hashes, keeps nothing wrong.
    other = tmp_path / "other"
    bad = other / "releases" / ".pull" / release.release_id / rel
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\0" * (len(real) // 2))
    failed = _pull(other, url, "--datasets", name)
    assert failed.returncode == 2 and "expected" in failed.stderr and "sha256" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert not bad.exists() and not (other / "releases" / release.release_id / rel).exists()
    retried = _pull(other, url, "--datasets", name)
    assert retried.returncode == 0, retried.stderr
    assert (other / "releases" / release.release_id / rel).read_bytes() == real


def test_pull_names_unknown_datasets_and_a_silent_server(service: tuple[str, Any],
                                                         tmp_path: Path) -> None:
    url, _release = service
    wrong = _pull(tmp_path / "a", url, "--datasets", "no_such_dataset")
    assert wrong.returncode == 2 and "--datasets: expected names among" in wrong.stderr
    silent = _pull(tmp_path / "b", f"http://127.0.0.1:{free_port()}")
    assert silent.returncode == 2 and "no answer" in silent.stderr
    assert "Traceback" not in wrong.stderr + silent.stderr


def test_one_source_of_job_limits_published_and_used_by_check(service: tuple[str, Any],
                                                              tmp_path: Path) -> None:
    url, release = service
    limits = requests.get(f"{url}/api/limits", timeout=10).json()
    assert limits == {"time_limit_s": 123.0, "mem_limit_gb": 3.0, "cpus": 1.0,
                      "tmp_size_mb": 1024, "output_max_mb": 1024.0, "gpus": "1 test GPU"}
    guide = requests.get(f"{url}/guide", timeout=10).text
    assert 'id="job-limits"' in guide and "123 s" in guide and "1 test GPU" in guide
    script = tmp_path / "dump.py"
    script.write_text(DUMP_LIMITS)
    home = tmp_path / "author"
    assert _pull(home, url, "--datasets", release.datasets[0]).returncode == 0
    kept = tmp_path / "kept"
    checked = subprocess.run(
        [CLI, "check", f"{sys.executable} {script}", "--runner", "local", "--server", url,
         "--release", release.release_id[:12], "--datasets", release.datasets[0], "--tracks",
         "raw", "--keep-outputs", str(kept)], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "SPARED_BENCH_HOME": str(home)}, timeout=600)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    assert f"job limits of {url}: time 123 s, memory 3 GiB" in checked.stderr
    card = next(kept.rglob("model.json")).read_text()
    told = __import__("json").loads(card)["parameters"]
    # task.json carried the service's limits; no GPU here, and it says so.
    assert told["time_limit_s"] == 123.0 and told["mem_limit_gb"] == 3.0 and told["cpus"] == 1.0
    assert told["gpus"] == "none here (1 test GPU on the service)"
