"""A worker without the service's release folder: it fetches each job's files from the served
app by content address (its own token) into its cache, and runs and scores the jobs there.

A real `spared-bench worker` process with a home of its own (no ``releases/``), the store and
queue by URL, the release files by HTTP from `spared-bench serve`, real containers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from evaluator.orchestrator import register_image, wait_for
from evaluator.store import JobAttempt, Result, session_scope
from tests.orchestrator.conftest import BenchEnv, publish_small
from tests.orchestrator.served import served_app
from tests.store.dbsupport import REPO

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLI = str(Path(sys.executable).parent / "spared-bench")
FAST = ["--lease-s", "20", "--heartbeat-s", "0.5", "--reap-interval-s", "1",
        "--retry-delay-s", "1", "--timeout-s", "120", "--mem-limit-gb", "1", "--cpus", "1"]


def test_a_worker_without_the_release_folder_fetches_by_content_address(
        sqlite_bench_env: BenchEnv, small_release: Any, build_image: Any, tmp_path: Path,
        remove_worker_containers: list[str]) -> None:
    env = sqlite_bench_env
    bench = publish_small(env, small_release)
    made = subprocess.run([CLI, "workers", "add", "remote-1"], cwd=REPO, env=env.env,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    remote_home = tmp_path / "remote-home"
    remote_home.mkdir()
    with served_app(env.env, env.home) as url:
        receipt = register_image(bench, build_image("ok"), name="constant", team="lab")
        remove_worker_containers.append("remote-1")
        env.start_worker("remote-1", *FAST, "--server", url, env={
            "SPARED_BENCH_HOME": str(remote_home), "SPARED_BENCH_WORKER_TOKEN": token})
        try:
            status = wait_for(bench, receipt.submission_id, timeout_s=240, poll_s=0.5)
        except Exception:
            print(env.worker_log("remote-1")[-4000:])
            raise
    assert status.counts == {"succeeded": 2}, env.worker_log("remote-1")[-3000:]
    # It never read the service's release folder: it has none; its cache holds the job files.
    assert not (remote_home / "releases").exists()
    cache = remote_home / "worker-cache"
    wanted = {rel: e for rel, e in small_release.manifest.files.items()}
    held = {p.name for p in (cache / "blobs").iterdir()}
    assert held == {e.sha256 for e in wanted.values()}
    copy = cache / "releases" / small_release.release_id
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()) \
        == sorted([*wanted, "manifest.json"])
    with session_scope(bench.engine) as session:
        attempts = session.exec(select(JobAttempt).order_by(JobAttempt.id)).all()
        results = session.exec(select(Result)).all()
    assert len(results) == 2 and {a.worker for a in attempts} == {"remote-1"}
    # What travelled is recorded per job: the first job fetched its files, the second only
    # its own track's training file (the rest was in the cache).
    fetched = [a.timings["data_fetched_mb"] for a in attempts]
    total_mb = sum(e.bytes for e in wanted.values()) / 1e6
    assert abs(sum(fetched) - total_mb) < 1e-6
    assert all("data_fetch_s" in a.timings for a in attempts)
