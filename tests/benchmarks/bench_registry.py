"""Submitting through the registry against uploading a ``docker save`` archive.

A served web app with its registry (``spared-bench serve``, ``spared-bench registry serve``,
Debian's docker-registry) on loopback; one team. The image is the cnn-delta baseline (the torch
base: about 1.4 GB; ``--quick``: the mean baseline, about 0.5 GB), given a new label so its
digest is new each run. Cases, each through the real CLI:

- archive upload (the reference): ``submit IMAGE --archive --server`` (docker save streamed);
- first push: ``submit IMAGE --server`` into an empty registry (every layer travels);
- version 2: the same image plus one small layer: only that layer travels;
- a known image: refused by the precheck before any upload, against the archive route, which
  refuses it only after the whole upload.

Bytes: what reached the service (the archive's size; the registry's storage growth).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.benchmarks.harness import BenchRow

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "spared-bench")


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _build(client: Any, dockerfile: str, files: dict[str, bytes]) -> str:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    image, _ = client.images.build(fileobj=context, custom_context=True, network_mode="none",
                                   rm=True, forcerm=True)
    return str(image.id)


def run(quick: bool = False) -> list[BenchRow]:
    """Measure the three routes; return the table's rows."""
    from evaluator.runners import docker_client
    from tests.orchestrator.served import registry_service

    client = docker_client()
    source = "spared-bench/baseline-mean:1" if quick else "spared-bench/baseline-cnn-delta:1"
    nonce = uuid.uuid4().hex[:12]
    first = _build(client, f"FROM {source}\nLABEL org.sparedbench.bench={nonce}\n", {})
    second = _build(client, f"FROM {first}\nCOPY v2.txt /app/v2.txt\n",
                    {"v2.txt": b"version 2\n" * 100})
    archived = _build(client, f"FROM {source}\nLABEL org.sparedbench.bench={nonce}-archive\n",
                      {})
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        bench_env = SimpleNamespace(home=home, env={
            **os.environ, "SPARED_BENCH_HOME": str(home), "SPARED_BENCH_PROGRESS": "0",
            "SPARED_BENCH_DAILY_SUBMISSIONS": "100"})
        storage = home / "registry" / "storage"
        with registry_service(bench_env) as (url, _, env):
            subprocess.run([CLI, "team", "create", "bench"], env=env, check=True,
                           capture_output=True)
            token = subprocess.run([CLI, "team", "token", "bench"], env=env, check=True,
                                   capture_output=True, text=True).stdout.strip()
            author = {**env, "SPARED_BENCH_TOKEN": token}

            def submit(image: str, name: str, *extra: str) -> tuple[float, str]:
                start = time.perf_counter()
                done = subprocess.run([CLI, "submit", image, "--name", name, "--server",
                                       url, *extra], env=author, capture_output=True,
                                      text=True, timeout=3600)
                elapsed = time.perf_counter() - start
                if done.returncode != 0 and "already submitted" not in done.stderr:
                    raise RuntimeError(done.stderr[-2000:])
                return elapsed, done.stderr

            archive_bytes = sum(len(c) for c in client.images.get(archived).save(
                chunk_size=1 << 20))
            archive_s, _ = submit(archived, "archive", "--archive")
            rows.append(BenchRow("registry", "archive upload (reference)", archive_s, "s",
                                 note=f"{archive_bytes / 1e6:.0f} MB sent"))
            before = _tree_bytes(storage)
            push_s, err = submit(first, "pushed")
            sent = _tree_bytes(storage) - before
            rows.append(BenchRow("registry", "first push + submit", push_s, "s",
                                 archive_s, "archive upload",
                                 note=f"{sent / 1e6:.0f} MB stored; "
                                      f"{err.strip().splitlines()[-1][:60]}"))
            before = _tree_bytes(storage)
            v2_s, err = submit(second, "pushed")
            v2_sent = _tree_bytes(storage) - before
            rows.append(BenchRow("registry", "version 2 (one new layer)", v2_s, "s",
                                 archive_s, "archive upload",
                                 note=f"{v2_sent / 1e3:.0f} kB stored, "
                                      f"{v2_sent / archive_bytes:.5f}x the archive"))
            refused_s, err = submit(first, "again")
            rows.append(BenchRow("registry", "known image refused (precheck)", refused_s,
                                 "s", archive_s, "archive upload",
                                 note="no upload" if "pushing" not in err else "pushed!"))
            refused_archive_s, _ = submit(archived, "again", "--archive")
            rows.append(BenchRow("registry", "known image refused (archive route)",
                                 refused_archive_s, "s", archive_s, "archive upload",
                                 note="after the whole upload"))
    for image in (second, first, archived):
        with contextlib.suppress(Exception):
            client.images.remove(image, force=True)
    return rows
