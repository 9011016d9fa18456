"""An author follows a submission on the service: statuses in the contract's names, retries
explained, queue position and ETA, submissions left today, and the download of one's own
hidden-split predictions (owners only) — through the real CLI, worker and web server, on
SQLite and on Postgres + Redis.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import requests
from sqlmodel import select

from evaluator.orchestrator import register_image, wait_for
from evaluator.orchestrator.estimates import TRIES_NOTE
from evaluator.store import Result, session_scope
from tests.orchestrator.conftest import BenchEnv, publish_small
from tests.orchestrator.served import served_app
from tests.store.dbsupport import REPO

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLI = str(Path(sys.executable).parent / "spared-bench")
FAST = ["--lease-s", "4", "--heartbeat-s", "0.5", "--reap-interval-s", "1",
        "--retry-delay-s", "1", "--timeout-s", "120", "--mem-limit-gb", "1", "--cpus", "1"]


def _cli(env: BenchEnv, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *argv], env=env.env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def _served(env: BenchEnv) -> contextlib.AbstractContextManager[str]:
    return served_app(env.env, env.home)


def test_an_author_follows_and_downloads_on_the_service(
        bench_env: BenchEnv, small_release: Any, build_image: Any,
        remove_worker_containers: list[str]) -> None:
    bench = publish_small(bench_env, small_release)
    assert _cli(bench_env, "team", "create", "lab", "--daily-limit", "3").returncode == 0
    token = _cli(bench_env, "team", "token", "lab").stdout.strip()
    _cli(bench_env, "team", "create", "rival")
    rival = _cli(bench_env, "team", "token", "rival").stdout.strip()

    ok = register_image(bench, build_image("ok", nonce="author"), name="ok", team="lab")
    crash = register_image(bench, build_image("crash", nonce="author"), name="crash",
                           team="lab")
    assert (ok.submissions_left_today, crash.submissions_left_today) == (2, 1)

    # Queued, no worker yet, no history: positions on the whole service, ETA unknown.
    status = _cli(bench_env, "status", "lab/crash", "--token", token)
    assert status.returncode == 0, status.stderr
    assert "queued #3, ETA unknown" in status.stdout and "queued #4, ETA unknown" in status.stdout
    assert "queue: position: jobs queued before it on the service" in status.stdout
    assert "submissions left today (UTC) for team lab: 1" in status.stdout
    assert TRIES_NOTE in status.stdout

    remove_worker_containers.append("w-author")
    bench_env.start_worker("w-author", *FAST)
    for receipt in (ok, crash):
        wait_for(bench, receipt.submission_id, timeout_s=180, poll_s=0.5)

    # A model's own failure in the contract's name, final after one attempt.
    status = _cli(bench_env, "status", "lab/crash", "--token", token)
    rows = [line for line in status.stdout.splitlines()
            if line.startswith(small_release.release_id[:12])]
    assert len(rows) == 2 and all(" exit_nonzero " in row and " 1/3 " in row for row in rows)
    assert "jobs: exit_nonzero 2" in status.stdout
    assert "(villacampa_lung_organoid/raw, exit_nonzero) ---" in status.stdout
    data = json.loads(_cli(bench_env, "status", "lab/crash", "--json").stdout)
    assert {j["outcome"] for j in data["jobs"]} == {"exit_nonzero"}

    # With history and the worker stopped: a numeric ETA for the next submission.
    bench_env.stop_workers()
    late = register_image(bench, build_image("ok", nonce="late"), name="late", team="lab")
    assert late.submissions_left_today == 0
    status = _cli(bench_env, "status", "lab/late", "--token", token)
    assert "queued #1, ETA ~" in status.stdout and "ETA unknown" not in status.stdout
    assert "submissions left today (UTC) for team lab: 0" in status.stdout

    with _served(bench_env) as url:
        # `status TEAM/NAME --server URL`, as the README writes it (it answered 404)
        remote = _cli(bench_env, "status", "lab/crash", "--server", url, "--token", token)
        assert remote.returncode == 0, remote.stderr
        assert "jobs: exit_nonzero 2" in remote.stdout
        out = bench_env.home / "downloads"
        got = _cli(bench_env, "predictions", "lab/ok", "--server", url, "--token", token,
                   "--out", str(out))
        assert got.returncode == 0, got.stderr
        assert "2 predictions file(s)" in got.stdout
        with session_scope(bench.engine) as session:
            results = {r.track: SimpleNamespace(**r.model_dump()) for r in session.exec(
                select(Result).where(Result.submission_id == ok.submission_id))}
        for track, result in results.items():
            path = out / small_release.release_id[:12] / "villacampa_lung_organoid" / \
                f"{track}.npy"
            array = np.load(path)
            assert array.dtype == np.float32 and array.shape == (result.n_spots,
                                                                 result.n_genes)
            assert hashlib.sha256(array.tobytes()).hexdigest() == result.predictions_sha256
        # Content-addressed: the two tracks' constant predictions are kept once.
        kept = sorted((bench_env.home / "predictions").rglob("*.npy"))
        assert [p.stem for p in kept] == sorted({r.predictions_sha256 for r in
                                                 results.values()})
        again = _cli(bench_env, "predictions", "lab/ok", "--server", url, "--token", token,
                     "--out", str(out))
        assert again.returncode == 0 and "here already" in again.stderr

        # Another team: 403 (a public entry) on the list and on the file; no token: 401.
        denied = _cli(bench_env, "predictions", "lab/ok", "--server", url, "--token", rival,
                      "--out", str(bench_env.home / "stolen"))
        assert denied.returncode == 2 and "HTTP 403" in denied.stderr
        assert not (bench_env.home / "stolen").exists()
        result_id = next(iter(results.values())).id
        answer = requests.get(f"{url}/api/predictions/{result_id}",
                              headers={"Authorization": f"Bearer {rival}"}, timeout=10)
        assert answer.status_code == 403
        assert requests.get(f"{url}/api/predictions/{result_id}", timeout=10).status_code == 401
        answer = requests.get(f"{url}/api/predictions/{result_id}",
                              headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert answer.status_code == 200
        assert answer.headers["X-Content-SHA256"] in {r.predictions_sha256
                                                      for r in results.values()}
        # The owner's view of the entry page: names, tries, submissions left.
        page = requests.post(f"{url}/entries/{crash.submission_id}", data={"token": token},
                             timeout=10).text
        assert "exit_nonzero (the model)" in page and 'id="tries-note"' in page
        assert "Submissions left today (UTC) for team <b>lab</b>: 0." in page
        page = requests.post(f"{url}/entries/{late.submission_id}", data={"token": token},
                             timeout=10).text
        assert "queued #1, ETA ~" in page
