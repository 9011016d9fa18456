"""A worker's blob cache against the served app: fetch throughput of one large release file.

A 200 MB file (``--quick``: 40 MB) of a published release is fetched by content address
(``GET /api/worker/blobs/<sha256>`` of ``spared-bench serve``, waitress, on this machine)
into a ``BlobCache``: cold (nothing here), resumed (half of it left in a part file), warm (here
and hashed before: nothing travels or is read) and warm after its inode changed (hashed again,
nothing travels). References in the same process: the same bytes through a plain ``requests``
GET thrown away (no hash, no write), and a local sha256 of the file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

from evaluator.core.fsio import atomic_write_json, sha256_file
from evaluator.core.settings import Settings
from tests.benchmarks.harness import BenchRow

RELEASE_ID = "c" * 64
DATASET = "villacampa_lung_organoid"


def _fake_release(home: Path, size: int) -> tuple[str, int]:
    """A published release whose one file is ``size`` random bytes; returns (sha256, size)."""
    from evaluator.datasets.release import BLOBS_DIR

    root = home / "releases" / RELEASE_ID
    rel = f"public/{DATASET}/train_patches.npy"
    path = root / rel
    path.parent.mkdir(parents=True)
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 << 20))
            fh.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    sha = digest.hexdigest()
    blob = home / "releases" / BLOBS_DIR / sha[:2] / sha
    blob.parent.mkdir(parents=True)
    os.link(path, blob)
    atomic_write_json(root / "manifest.json", {
        "release_id": RELEASE_ID, "format_version": "3", "label": "bench",
        "created_utc": datetime.now(UTC).isoformat(),
        "datasets": {DATASET: {"name": DATASET, "tracks": ["raw"], "hidden_split": "val",
                               "n_public_spots": 1, "n_hidden_spots": 1, "genes": ["g"],
                               "patch_shape": [224, 224, 3], "source_digest": "0" * 64}},
        "files": {rel: {"sha256": sha, "bytes": size}}})
    return sha, size


def run(quick: bool = False) -> list[BenchRow]:
    from evaluator.orchestrator import Bench
    from evaluator.orchestrator.auth import add_worker_token
    from evaluator.orchestrator.blobcache import BlobCache
    from evaluator.store import dispose_engines, session_scope, upsert_release
    from tests.orchestrator.served import served_app

    size = (40 if quick else 200) * 10**6
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-blobcache-") as tmp:
        home = Path(tmp) / "service"
        sha, size = _fake_release(home, size)
        url = f"sqlite:///{home / 'bench.db'}"
        env = {**os.environ, "SPARED_BENCH_HOME": str(home), "DATABASE_URL": url,
               "QUEUE_URL": f"sqlite:///{home / 'queue.db'}"}
        bench = Bench.open(Settings(home=home, database_url=url, queue_url=env["QUEUE_URL"]))
        with session_scope(bench.engine) as session:
            upsert_release(session, RELEASE_ID, label="bench", created_at=datetime.now(UTC),
                           tracks={DATASET: ["raw"]}, make_current=True)
            token = add_worker_token(session, "bench-worker")
        bench.close()
        dispose_engines()
        mb = size / 1e6
        with served_app(env, home) as server:
            headers = {"Authorization": f"Bearer {token}"}
            start = time.perf_counter()
            with requests.get(f"{server}/api/worker/blobs/{sha}", headers=headers,
                              stream=True, timeout=600) as answer:
                for _chunk in answer.iter_content(1 << 20):
                    pass
            plain_s = time.perf_counter() - start
            start = time.perf_counter()
            assert sha256_file(home / "releases" / RELEASE_ID /
                               f"public/{DATASET}/train_patches.npy") == sha
            hash_s = time.perf_counter() - start

            cache_root = Path(tmp) / "cache"
            cache = BlobCache(cache_root, server, token, max_bytes=10 * size)
            start = time.perf_counter()
            blob = cache.get(sha, size)
            cold_s = time.perf_counter() - start
            rows.append(BenchRow("blobcache", f"cold fetch of {mb:.0f} MB (hash while "
                                 "streaming, atomic rename)", mb / cold_s, "MB/s",
                                 mb / plain_s, "plain GET, bytes dropped"))
            start = time.perf_counter()
            cache.get(sha, size)
            warm_s = time.perf_counter() - start
            rows.append(BenchRow("blobcache", f"warm get of {mb:.0f} MB (hashed before)",
                                 warm_s * 1000, "ms", cold_s * 1000, "cold fetch"))
            os.chmod(blob, 0o440)  # the inode changed (a link or chmod does that): hash again
            start = time.perf_counter()
            cache.get(sha, size)
            rehash_s = time.perf_counter() - start
            rows.append(BenchRow("blobcache", f"warm get of {mb:.0f} MB after its inode "
                                 "changed (hashed again)", rehash_s * 1000, "ms",
                                 hash_s * 1000, "local sha256 of the file"))

            resumed = BlobCache(Path(tmp) / "resumed", server, token, max_bytes=10 * size)
            part = Path(tmp) / "resumed" / "parts" / f"{sha}.part"
            part.parent.mkdir(parents=True)
            with open(blob, "rb") as source, open(part, "wb") as target:
                shutil.copyfileobj(source, target, length=size // 2)
                target.truncate(size // 2)
            start = time.perf_counter()
            resumed.get(sha, size)
            resume_s = time.perf_counter() - start
            rows.append(BenchRow("blobcache", f"resumed fetch, half of {mb:.0f} MB in the "
                                 "part file", resume_s * 1000, "ms", cold_s * 1000,
                                 "cold fetch",
                                 note=f"{resumed.fetched_bytes / 1e6:.0f} MB travelled"))
    return rows
