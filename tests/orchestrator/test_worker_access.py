"""Workers reach the service with their own tokens and fetch release files by content address.

Through the real web server (``spared-bench serve``) and the CLI as processes: worker tokens
made, refused when revoked, kept apart from team tokens in both directions; the blob endpoint
(ranges, ETag, published files only, the hidden truth too); the worker's blob cache against it
(hash-verified, resumed after a transfer that stopped mid-body or a truncated part file, a
corrupt part or blob refused and fetched again, least recently used evicted by size); a
materialised release that ``load_release``, staging and scoring run on.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.orchestrator.conftest import _release_into
from tests.orchestrator.served import served_app
from tests.store.dbsupport import REPO, sqlite_url

CLI = str(Path(sys.executable).parent / "spared-bench")
MEAN = f"python {REPO}/submissions/baselines/mean/predict.py"
pytestmark = pytest.mark.slow


class Service:
    """A served store with the tiny release published, an admin and a plain team."""

    def __init__(self, url: str, home: Path, env: dict[str, str], release: Any,
                 tokens: dict[str, str]) -> None:
        self.url, self.home, self.env, self.release, self.tokens = url, home, env, release, tokens

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=120)

    def add_worker(self, name: str) -> str:
        made = self.cli("workers", "add", name)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()

    def hold(self, worker: str) -> None:
        """Record ``worker`` as running a job on every dataset of the release: its token may
        then read their hidden files (as a worker does between a claim and its result)."""
        from sqlmodel import select

        from evaluator.store import Job, Submission, Team, open_store, session_scope

        digest = "sha256:" + hashlib.sha256(worker.encode()).hexdigest()
        with session_scope(open_store(self.env["DATABASE_URL"])) as session:
            team = session.exec(select(Team).where(Team.name == "lab")).one()
            held = Submission(team_id=team.id or 0, name=f"held-{worker}", image_ref=digest,
                              image_digest=digest)
            session.add(held)
            session.flush()
            for dataset in self.release.datasets:
                session.add(Job(submission_id=held.id or 0, release_id=self.release.release_id,
                                dataset=dataset, track="raw", status="running",
                                worker=worker))

    def get(self, path: str, token: str | None = None, **headers: str) -> requests.Response:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.get(self.url + path, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_release: Any) -> Iterator[Service]:
    from evaluator.core.settings import Settings
    from evaluator.orchestrator import Bench, create_team, issue_token
    from evaluator.orchestrator.service import publish_release
    from evaluator.store import dispose_engines, session_scope

    home = tmp_path_factory.mktemp("service")
    _release_into(home, tiny_release)
    env = {**os.environ, "SPARED_BENCH_HOME": str(home), "DATABASE_URL": sqlite_url(home),
           "QUEUE_URL": f"sqlite:///{home / 'queue.db'}", "OMP_NUM_THREADS": "1",
           "SPARED_BENCH_PROGRESS": "0"}
    bench = Bench.open(Settings(home=home, database_url=env["DATABASE_URL"],
                                queue_url=env["QUEUE_URL"]))
    publish_release(bench, tiny_release.release_id, queue_baselines=False)
    with session_scope(bench.engine) as session:
        create_team(session, "admins", admin=True)
        create_team(session, "lab")
        tokens = {"admins": issue_token(session, "admins"), "lab": issue_token(session, "lab")}
    bench.close()
    dispose_engines()
    with served_app(env, home) as url:
        yield Service(url, home, env, tiny_release, tokens)


def _cache(service: Service, root: Path, token: str, *, max_bytes: int = 10**12,
           server: str | None = None) -> Any:
    from evaluator.orchestrator.blobcache import BlobCache

    return BlobCache(root, server or service.url, token, max_bytes=max_bytes)


# -- tokens ---------------------------------------------------------------------------------------


def test_worker_tokens_are_made_revoked_and_kept_apart_from_team_tokens(
        service: Service) -> None:
    rid = service.release.release_id
    token = service.add_worker("gpu-node-1")
    assert token.startswith("sbw_") and len(token) > 40
    from sqlmodel import select

    from evaluator.store import WorkerToken, get_engine, session_scope

    with session_scope(get_engine(service.env["DATABASE_URL"])) as session:
        row = session.exec(select(WorkerToken).where(WorkerToken.name == "gpu-node-1")).one()
        # only the hash is kept
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in {row.token_hash, row.prefix} and row.prefix == token[:12]
    again = service.cli("workers", "add", "gpu-node-1")
    assert again.returncode == 2 and "already has an active token" in again.stderr
    bad = service.cli("workers", "add", "../evil")
    assert bad.returncode == 2 and "worker name" in bad.stderr

    # A worker token opens the worker endpoints...
    manifest = service.get(f"/api/worker/releases/{rid[:12]}", token)
    assert manifest.status_code == 200 and manifest.json()["release_id"] == rid
    assert any(rel.startswith("hidden/") for rel in manifest.json()["files"])
    # ... and no team or admin endpoint.
    for path in ("/api/submissions/1", "/api/predictions?submission=1", "/api/admin/workers"):
        answer = service.get(path, token)
        assert answer.status_code == 403, path
        assert "worker token" in answer.json()["error"]
    posted = requests.post(f"{service.url}/api/admin/releases", json={"release": rid},
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert posted.status_code == 403
    # A team token, even an admin's, opens no worker endpoint; no token: 401.
    for team in ("lab", "admins"):
        answer = service.get(f"/api/worker/releases/{rid}", service.tokens[team])
        assert answer.status_code == 403 and "expected a worker token" in answer.json()["error"]
    assert service.get(f"/api/worker/releases/{rid}").status_code == 401
    assert service.get(f"/api/worker/releases/{rid}", "sbw_" + "x" * 43).status_code == 401

    # Revoked: refused from the next request on; the name can be given a new token.
    revoked = service.cli("workers", "revoke", "gpu-node-1")
    assert revoked.returncode == 0, revoked.stderr
    refused = service.get(f"/api/worker/releases/{rid}", token)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    assert service.cli("workers", "revoke", "gpu-node-1").returncode == 2
    fresh = service.add_worker("gpu-node-1")
    assert fresh != token
    assert service.get(f"/api/worker/releases/{rid}", fresh).status_code == 200
    assert service.get(f"/api/worker/releases/{rid}", token).status_code == 401
    listed = service.cli("workers", "tokens")
    assert listed.returncode == 0 and "gpu-node-1" in listed.stdout and fresh[:12] in listed.stdout


def test_the_blob_endpoint_serves_published_files_by_content_address(service: Service) -> None:
    token = service.add_worker("blob-reader")
    release = service.release
    name = release.datasets[0]
    entry = release.manifest.files[f"hidden/{name}/truth.h5ad"]
    # The hidden truth only to a worker running a job on its dataset; public files to any.
    refused = service.get(f"/api/worker/blobs/{entry.sha256}", token)
    assert refused.status_code == 403 and "running" in refused.json()["error"]
    public = release.manifest.files[f"public/{name}/raw/train.h5ad"]
    assert service.get(f"/api/worker/blobs/{public.sha256}", token).status_code == 200
    assert service.get("/api/worker/me", token).json() == {"name": "blob-reader"}
    service.hold("blob-reader")
    whole = service.get(f"/api/worker/blobs/{entry.sha256}", token)
    assert whole.status_code == 200
    assert hashlib.sha256(whole.content).hexdigest() == entry.sha256
    assert whole.headers["X-Content-SHA256"] == entry.sha256
    assert whole.headers["ETag"].strip('"') == entry.sha256
    assert "no-store" in whole.headers["Cache-Control"]
    ranged = service.get(f"/api/worker/blobs/{entry.sha256}", token, Range="bytes=100-")
    assert ranged.status_code == 206 and ranged.content == whole.content[100:]
    same = service.get(f"/api/worker/blobs/{entry.sha256}", token,
                       **{"If-None-Match": f'"{entry.sha256}"'})
    assert same.status_code == 304
    # Only files of a published release: any other content is unknown; a bad address is 400.
    assert service.get(f"/api/worker/blobs/{'0' * 64}", token).status_code == 404
    assert service.get("/api/worker/blobs/..%2Fmanifest.json", token).status_code in (400, 404)
    assert service.get(f"/api/worker/blobs/{entry.sha256.upper()}", token).status_code == 400
    # Team tokens never reach the truth.
    assert service.get(f"/api/worker/blobs/{entry.sha256}",
                       service.tokens["admins"]).status_code == 403


# -- the blob cache -----------------------------------------------------------------------------


def test_cache_fetches_verified_resumes_a_truncated_part_and_refuses_corrupt_bytes(
        service: Service, tmp_path: Path) -> None:
    from evaluator.orchestrator.blobcache import BlobCache

    token = service.add_worker("cache-1")
    service.hold("cache-1")
    rel = f"public/{service.release.datasets[0]}/train_patches.npy"
    entry = service.release.manifest.files[rel]
    real = (service.release.root / rel).read_bytes()
    cache: BlobCache = _cache(service, tmp_path / "cache", token)
    # A fetch that stopped half way: the part is resumed with a range, not fetched again.
    part = tmp_path / "cache" / "parts" / f"{entry.sha256}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(real[:len(real) // 2])
    blob = cache.get(entry.sha256, entry.bytes)
    assert blob == tmp_path / "cache" / "blobs" / entry.sha256
    assert blob.read_bytes() == real and not part.exists()
    assert cache.fetched_bytes == len(real) - len(real) // 2
    assert oct(blob.stat().st_mode & 0o777) == "0o444"
    # Here already: nothing travels.
    cache.get(entry.sha256, entry.bytes)
    assert cache.fetched_bytes == len(real) - len(real) // 2

    # A corrupt part: refused (its hash), dropped, fetched again from the start.
    other: BlobCache = _cache(service, tmp_path / "other", token)
    bad = tmp_path / "other" / "parts" / f"{entry.sha256}.part"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\0" * (len(real) // 2))
    assert other.get(entry.sha256, entry.bytes).read_bytes() == real
    assert other.fetched_bytes == len(real)  # the wrong half was not kept

    # A blob changed in the cache after it was fetched: hashed again, refused, fetched again.
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as fh:
        fh.seek(len(real) // 3)
        fh.write(b"\xff\xfe")
    before = cache.fetched_bytes
    assert cache.get(entry.sha256, entry.bytes).read_bytes() == real
    assert cache.fetched_bytes == before + len(real)

    # A server that keeps sending other bytes (here: more than the manifest says): refused.
    from evaluator.core.errors import ReleaseIntegrityError

    with pytest.raises(ReleaseIntegrityError, match=f"expected {entry.bytes - 1} bytes"):
        _cache(service, tmp_path / "third", token).get(entry.sha256, entry.bytes - 1)
    # A revoked worker fetches nothing.
    assert service.cli("workers", "revoke", "cache-1").returncode == 0
    from evaluator.orchestrator.errors import ServerUnavailable

    with pytest.raises(ServerUnavailable, match="401"):
        _cache(service, tmp_path / "fourth", token).get(entry.sha256, entry.bytes)


class _CuttingProxy:
    """An HTTP proxy to the served app that cuts its first answer with a body mid-body
    (the full Content-Length announced, half of it sent, the connection closed)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.requests: list[dict[str, str]] = []
        self.cut = False
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                proxy.requests.append(headers)
                answer = requests.get(proxy.target + self.path, headers=headers, timeout=30)
                self.send_response(answer.status_code)
                for key in ("Content-Length", "Content-Range", "ETag", "Content-Type"):
                    if key in answer.headers:
                        self.send_header(key, answer.headers[key])
                self.end_headers()
                body = answer.content
                if not proxy.cut and len(body) > 1000:
                    proxy.cut = True
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_cache_resumes_a_transfer_that_stopped_mid_body(service: Service, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from evaluator.orchestrator import client

    # The tiny release's files are smaller than one 1 MiB read; with 4 KiB reads the bytes
    # before the cut reach the part file (a lost read costs at most one chunk).
    monkeypatch.setattr(client, "PULL_CHUNK_BYTES", 4096)
    token = service.add_worker("cache-2")
    service.hold("cache-2")
    rel = f"public/{service.release.datasets[1]}/test_patches.npy"
    entry = service.release.manifest.files[rel]
    real = (service.release.root / rel).read_bytes()
    proxy = _CuttingProxy(service.url)
    try:
        cache = _cache(service, tmp_path / "cache", token, server=proxy.url)
        blob = cache.get(entry.sha256, entry.bytes)
    finally:
        proxy.close()
    assert blob.read_bytes() == real
    assert proxy.cut and len(proxy.requests) == 2
    assert "Range" not in proxy.requests[0]
    kept = int(proxy.requests[1]["Range"].removeprefix("bytes=").rstrip("-"))
    assert len(real) // 2 - 4096 < kept <= len(real) // 2
    assert cache.fetched_bytes == len(real)  # the first part, then the rest: nothing twice


def test_materialised_job_files_load_stage_and_score(service: Service, tmp_path: Path) -> None:
    from evaluator.datasets.release import load_release
    from evaluator.jobs.pipeline import JobPlan, LocalExecutor, TaskSettings, run_jobs
    from evaluator.runners import RunLimits

    token = service.add_worker("cache-3")
    service.hold("cache-3")
    for folder in ("work", "work-ref"):
        (tmp_path / folder).mkdir()
    cache = _cache(service, tmp_path / "cache", token)
    manifest = cache.manifest("current")
    assert manifest.release_id == service.release.release_id
    name = service.release.datasets[0]
    with cache.job_release(manifest, name, "raw") as release:
        assert release.manifest.partial
        assert sorted(release.manifest.files) == sorted([
            f"hidden/{name}/truth.h5ad", f"public/{name}/raw/train.h5ad",
            f"public/{name}/test_inputs.h5ad", f"public/{name}/test_patches.npy",
            f"public/{name}/train_patches.npy"])
        assert release.manifest.datasets[name].tracks == ["raw"]
        # the hard links of the cache's blobs, nothing copied
        blob = cache.blob_path(manifest.files[f"public/{name}/train_patches.npy"].sha256)
        assert os.path.samefile(release.train_patches_path(name), blob)
        settings = TaskSettings(time_limit_s=300, device="cpu", seed=0)
        results = run_jobs(LocalExecutor(MEAN), release, [JobPlan(name, "raw")],
                           purpose="evaluation", settings=settings,
                           limits=RunLimits(timeout_s=300, mem_limit_gb=4, cpus=1),
                           staging_root=tmp_path / "staging", work_dir=tmp_path / "work")
    assert results[0].succeeded, results[0].message
    reference = run_jobs(LocalExecutor(MEAN), service.release, [JobPlan(name, "raw")],
                         purpose="evaluation", settings=settings,
                         limits=RunLimits(timeout_s=300, mem_limit_gb=4, cpus=1),
                         staging_root=tmp_path / "staging-ref", work_dir=tmp_path / "work-ref")
    assert results[0].score.metrics == reference[0].score.metrics
    # The other track joins the same folder; loading verifies every file (no extra ones).
    cache.materialise(manifest, name, "spackle")
    loaded = load_release(manifest.release_id, cache.releases_dir)
    assert loaded.manifest.datasets[name].tracks == ["raw", "spackle"]
    assert len(loaded.manifest.files) == 6


def test_cache_evicts_least_recently_used_by_size(service: Service, tmp_path: Path) -> None:
    from evaluator.datasets.release import job_files, load_release

    token = service.add_worker("cache-4")
    service.hold("cache-4")
    probe = _cache(service, tmp_path / "probe", token)
    manifest = probe.manifest("current")
    a, b, c = service.release.datasets[:3]
    size = {n: sum(e.bytes for e in job_files(manifest, n, "raw").values()) for n in (a, b, c)}
    # Room for two datasets' files, not three.
    limit = size[a] + size[b] + min(size.values()) // 2
    assert limit < sum(size.values())
    cache = _cache(service, tmp_path / "cache", token, max_bytes=max(limit, size[a] + size[c]))
    cache.materialise(manifest, a, "raw")
    cache.materialise(manifest, b, "raw")
    cache.materialise(manifest, a, "raw")  # a is used again: b is now the least recent
    cache.materialise(manifest, c, "raw")
    held = {p.name for p in (tmp_path / "cache" / "blobs").iterdir()}
    shas = {n: {e.sha256 for e in job_files(manifest, n, "raw").values()} for n in (a, b, c)}
    assert shas[a] <= held and shas[c] <= held
    assert not (shas[b] - shas[a] - shas[c]) & held
    assert cache.usage_bytes() <= cache.max_bytes
    # The release folder lost b's files with their blobs and still loads (verified).
    release = load_release(manifest.release_id, cache.releases_dir)
    assert set(release.manifest.datasets) == {a, c}
    # b is fetched again when a job needs it.
    before = cache.fetched_bytes
    cache.materialise(manifest, b, "raw")
    assert cache.fetched_bytes > before


# -- the workers listing ------------------------------------------------------------------------


def _wait_for(condition: Any, timeout_s: float = 60.0) -> Any:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


def test_a_running_worker_is_listed_by_the_cli_the_api_and_the_admin_page(
        service: Service) -> None:
    import json
    import signal
    import socket

    log = open(service.home / "worker-listed.log", "wb")  # noqa: SIM115 (closed below)
    worker = subprocess.Popen(
        [CLI, "worker", "--name", "listed-1", "--reap-interval-s", "0.5", "--heartbeat-s",
         "0.2", "--lease-s", "5"], cwd=REPO, env=service.env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def listed() -> dict[str, Any] | None:
            answer = service.cli("workers", "--json")
            assert answer.returncode == 0, answer.stderr
            rows = {w["name"]: w for w in json.loads(answer.stdout)["workers"]}
            return rows.get("listed-1")

        row = _wait_for(listed)
        assert row["host"] == socket.gethostname() and row["pid"] == worker.pid
        assert row["state"] == "alive" and row["jobs"] == [] and row["jobs_last_hour"] == 0
        assert (row["gpu_ids"], row["gpu_names"], row["slots"]) == ("", "", 1)
        first_beat = row["heartbeat_at"]
        _wait_for(lambda: (listed() or {}).get("heartbeat_at", first_beat) > first_beat)
        table = service.cli("workers")
        assert table.returncode == 0
        header, _rule, *lines = table.stdout.splitlines()
        assert header.split() == ["worker", "state", "host", "gpus", "current", "jobs",
                                  "heartbeat", "jobs/hour"]
        line = next(x for x in lines if x.startswith("listed-1"))
        assert line.split()[:5] == ["listed-1", "alive", socket.gethostname(), "none", "idle"]

        # The same through the admins' API, with --server; other tokens are refused.
        remote = service.cli("workers", "--json", "--server", service.url, "--token",
                             service.tokens["admins"])
        assert remote.returncode == 0, remote.stderr
        assert "listed-1" in {w["name"] for w in json.loads(remote.stdout)["workers"]}
        refused = service.cli("workers", "--server", service.url, "--token",
                              service.tokens["lab"])
        assert refused.returncode == 2 and "HTTP 403" in refused.stderr
        api = service.get("/api/admin/workers?lease_s=30", service.tokens["admins"]).json()
        assert api["lease_s"] == 30 and "listed-1" in {w["name"] for w in api["workers"]}
        assert service.get("/api/admin/workers").status_code == 401
        assert service.get("/api/admin/workers", service.tokens["lab"]).status_code == 403

        # The admin page: a form first, the table for an admin's token, 403 for another's.
        form = requests.get(f"{service.url}/admin/workers", timeout=30)
        assert form.status_code == 200 and 'id="workers-form"' in form.text
        assert "listed-1" not in form.text
        page = requests.post(f"{service.url}/admin/workers",
                             data={"token": service.tokens["admins"]}, timeout=30)
        assert page.status_code == 200 and 'data-name="listed-1"' in page.text
        assert socket.gethostname() in page.text
        other = requests.post(f"{service.url}/admin/workers",
                              data={"token": service.tokens["lab"]}, timeout=30)
        assert other.status_code == 403 and "listed-1" not in other.text
    finally:
        os.killpg(worker.pid, signal.SIGINT)
        worker.wait(timeout=30)
        log.close()
    stopped = _wait_for(lambda: (listed() or {}).get("state") == "stopped" and listed())
    assert stopped["stopped_at"] is not None


def test_cache_shared_by_threads_and_processes_fetches_once_and_keeps_pinned_blobs(
        service: Service, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from evaluator.datasets.release import job_files

    token = service.add_worker("cache-5")
    service.hold("cache-5")
    root = tmp_path / "shared"
    # Two caches on one folder (two worker processes of a host), two threads each: one fetch.
    caches = [_cache(service, root, token), _cache(service, root, token)]
    rel = f"public/{service.release.datasets[2]}/train_patches.npy"
    entry = service.release.manifest.files[rel]
    with ThreadPoolExecutor(4) as pool:
        blobs = list(pool.map(lambda i: caches[i % 2].get(entry.sha256, entry.bytes), range(4)))
    assert len(set(blobs)) == 1 and blobs[0].read_bytes() == (service.release.root /
                                                                rel).read_bytes()
    assert sum(c.fetched_bytes for c in caches) == entry.bytes

    # A running job's files stay while another job's fetch goes over the limit.
    manifest = caches[0].manifest("current")
    a, b = service.release.datasets[:2]
    tight = _cache(service, tmp_path / "tight", token, max_bytes=1)
    with tight.job_release(manifest, a, "raw") as release:
        tight.materialise(manifest, b, "raw")
        pinned = {e.sha256 for e in job_files(manifest, a, "raw").values()}
        held = {p.name for p in (tmp_path / "tight" / "blobs").iterdir()}
        assert pinned <= held  # a's files were not evicted under its running job
        assert release.truth_path(a).is_file()
    # A pin of another process (a second worker on this cache) holds too.
    script = ("import sys, time; from pathlib import Path; "
              "from evaluator.orchestrator.blobcache import BlobCache; "
              "cache = BlobCache(Path(sys.argv[1]), 'http://unused', 'sbw_x', max_bytes=1)\n"
              "with cache.pinned({sys.argv[2]}):\n"
              "    print('pinned', flush=True); time.sleep(60)")
    kept = next(iter(pinned))
    other = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "tight"), kept],
                             cwd=REPO, env=service.env, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "pinned"
        tight.evict()
        assert {p.name for p in (tmp_path / "tight" / "blobs").iterdir()} == {kept}
    finally:
        other.kill()
        other.communicate()
    tight.evict()
    assert not list((tmp_path / "tight" / "blobs").iterdir())  # nothing pinned: all over
    assert not list((tmp_path / "tight" / ".verified").iterdir())
