"""Workers without a shared disk against workers that share the service's disk.

The four baselines (mean, knn, ridge, cnn-delta) pushed to the service's registry and evaluated
on the demo release (5 datasets x 2 tracks x 4 = 40 jobs; ``--quick``: 2 datasets, 16 jobs), the
store on Postgres and the queue on Redis, the web app and the registry served on loopback:

- reference: one `spared-bench worker` process on this machine, reading the service's
  release folder, the images already in this engine (a shared disk);
- one worker host without a shared disk (``spared-bench/worker-host:1``: its own Docker engine
  and cache in volumes of its own; URLs and a worker token only), cold (empty engine and
  cache: every image is pulled from the registry, every file fetched), then warm (the same
  volumes, a new service with the same content: nothing to pull or fetch);
- two such hosts, cold.

Figures: jobs/min; the share of the jobs' worker time spent getting the image (pull) and the
data (content-addressed fetch) from the attempts' timings; bytes moved per job: the fetched
files (``data_fetched_mb``) plus the images' compressed layers each cold host pulled (from the
registry's manifests). Two shared cores: two hosts show contention as much as parallelism.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.benchmarks.harness import BenchRow, build_demo_release

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "spared-bench")
BASELINES = ("mean", "knn", "ridge", "cnn-delta")
HOST_IMAGE = "spared-bench/worker-host:1"
WORKER_ARGS = ["--timeout-s", "900", "--mem-limit-gb", "4", "--cpus", "1", "--lease-s", "120",
               "--heartbeat-s", "5", "--log-level", "WARNING"]
HOST_ARGS = ["--network", "host", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
             "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
             "--security-opt", "systempaths=unconfined", "-v", "/sys/fs/cgroup:/sys/fs/cgroup",
             "--tmpfs", "/run"]


@contextlib.contextmanager
def _service(root: Path, release: Any) -> Iterator[SimpleNamespace]:
    """A fresh service: Postgres schema, Redis queue, home with the release, web app and
    registry; the 4 baselines pushed (not yet queued: the release is published last)."""
    from evaluator.datasets.release import load_release
    from tests.orchestrator.served import registry_service
    from tests.store.dbsupport import postgres_schema_url, redis_server_url

    home = root / f"service-{uuid.uuid4().hex[:6]}"
    (home / "releases").mkdir(parents=True)
    shutil.copytree(release.root, home / "releases" / release.release_id,
                    copy_function=os.link)
    load_release(release.release_id, home / "releases")
    with postgres_schema_url() as database_url:
        queue_url = f"{redis_server_url()}?queue=bench-{uuid.uuid4().hex[:8]}"
        base = SimpleNamespace(home=home, env={
            **os.environ, "SPARED_BENCH_HOME": str(home), "DATABASE_URL": database_url,
            "QUEUE_URL": queue_url, "SPARED_BENCH_PROGRESS": "0", "OMP_NUM_THREADS": "1",
            "SPARED_BENCH_DAILY_SUBMISSIONS": "100"})
        with registry_service(base) as (url, registry, env):
            _cli(env, "team", "create", "bench")
            token = _cli(env, "team", "token", "bench").strip()
            refs = []
            for name in BASELINES:
                receipt = json.loads(_cli({**env, "SPARED_BENCH_TOKEN": token}, "submit",
                                          f"spared-bench/baseline-{name}:1", "--name", name,
                                          "--server", url, "--json"))
                refs.append(receipt["submission_id"])
            yield SimpleNamespace(home=home, url=url, registry=registry, env=env,
                                  database_url=database_url, queue_url=queue_url,
                                  release=release, submissions=refs)


def _cli(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run([CLI, *argv], env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"spared-bench {' '.join(argv[:2])}: {done.stderr[-2000:]}")
    return done.stdout


def _image_bytes(service: SimpleNamespace) -> int:
    """Compressed bytes of the distinct layers of the four pushed images."""
    from evaluator.core.settings import Settings
    from evaluator.orchestrator.registry import RegistryClient, RegistryRef, TokenSigner
    from evaluator.store import Submission, open_store, session_scope

    settings = Settings(home=service.home)
    client = RegistryClient(f"http://{service.registry}",
                            TokenSigner.load_or_create(settings.registry_key_path))
    layers: dict[str, int] = {}
    with session_scope(open_store(service.database_url)) as session:
        refs = [session.get(Submission, i).image_ref for i in service.submissions]
    for ref in refs:
        manifest = client.manifest(RegistryRef.parse(ref))
        for layer in manifest["layers"]:
            layers[layer["digest"]] = int(layer["size"])
    client.close()
    return sum(layers.values())


def _host(name: str, service: SimpleNamespace, token: str) -> None:
    variables = {"DATABASE_URL": service.database_url, "QUEUE_URL": service.queue_url,
                 "SPARED_BENCH_WORKER_TOKEN": token, "SPARED_BENCH_PROGRESS": "0",
                 "WORKER_HOST_ID": name, "OMP_NUM_THREADS": "1",
                 "SPARED_BENCH_HOME": "/var/lib/spared-bench/worker"}
    flags = [part for key, value in variables.items() for part in ("-e", f"{key}={value}")]
    subprocess.run(["docker", "run", "-d", "--name", name, *HOST_ARGS,
                    "--mount", f"type=volume,src={name}-engine,dst=/var/lib/docker",
                    "--mount", f"type=volume,src={name}-home,dst=/var/lib/spared-bench",
                    *flags, HOST_IMAGE, "spared-bench", "worker", "--name", name, "--server",
                    service.url, *WORKER_ARGS], check=True, capture_output=True, timeout=120)


def _measure(service: SimpleNamespace, start_workers: Any) -> dict[str, float]:
    """Start the workers, publish the release and queue the four entries on it, wait;
    figures."""
    from sqlmodel import select

    from evaluator.store import Job, JobAttempt, open_store, session_scope

    engine = open_store(service.database_url)
    start_workers()
    time.sleep(5)  # the workers import and connect; the clock starts at the publish
    start = time.perf_counter()
    _cli(service.env, "data", "publish", service.release.release_id)
    # The four entries were submitted before the release: queue them on it now.
    _cli(service.env, "reevaluate", "--release", service.release.release_id, "--all")
    while True:
        with session_scope(engine) as session:
            jobs = session.exec(select(Job)).all()
            if jobs and all(j.status not in ("queued", "running") for j in jobs):
                failed = [j for j in jobs if j.status != "succeeded"]
                if failed:
                    raise RuntimeError(f"job {failed[0].dataset}/{failed[0].track}: "
                                       f"{failed[0].message}")
                attempts = [a.timings for a in session.exec(select(JobAttempt))]
                count = len(jobs)
                break
        if time.perf_counter() - start > 7200:
            raise RuntimeError("jobs not done within 2 h")
        if not jobs and time.perf_counter() - start > 120:
            raise RuntimeError("no job was queued within 2 min of the publish")
        time.sleep(1)
    wall = time.perf_counter() - start
    worker = sum(t.get("worker_s", 0.0) for t in attempts)
    return {"jobs": count, "wall_s": wall, "jobs_per_min": count / wall * 60,
            "image_share": sum(t.get("image_fetch_s", 0.0) for t in attempts) / worker,
            "data_share": sum(t.get("data_fetch_s", 0.0) for t in attempts) / worker,
            "data_mb": sum(t.get("data_fetched_mb", 0.0) for t in attempts)}


def run(quick: bool = False) -> list[BenchRow]:
    """Measure the four set-ups; return the table's rows."""
    subprocess.run(["bash", str(REPO / "scripts" / "stack.sh"), "build"], check=True,
                   capture_output=True, timeout=3600)
    rows: list[BenchRow] = []
    hosts = [f"sb-bench-host-{uuid.uuid4().hex[:6]}-{i}" for i in (1, 2)]
    with tempfile.TemporaryDirectory(prefix="bench-multihost-") as tmp:
        root = Path(tmp)
        release = build_demo_release(root / "build", quick)
        results: dict[str, dict[str, float]] = {}
        image_mb = 0.0
        try:
            # Reference: one worker process sharing the service's disk and engine.
            with _service(root, release) as service:
                process: list[subprocess.Popen[bytes]] = []

                def local() -> None:
                    process.append(subprocess.Popen(
                        [CLI, "worker", "--name", "local", *WORKER_ARGS], env=service.env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

                try:
                    results["shared"] = _measure(service, local)
                finally:
                    for p in process:
                        p.terminate()
                        p.wait(timeout=60)
            for label, count in (("1 host, cold", 1), ("1 host, warm", 1), ("2 hosts, cold", 2)):
                with _service(root, release) as service:
                    image_mb = _image_bytes(service) / 1e6
                    chosen = hosts[:count] if label != "2 hosts, cold" else \
                        [f"{h}-pair" for h in hosts]

                    def remote(chosen: list[str] = chosen, service: Any = service) -> None:
                        for name in chosen:
                            subprocess.run(["docker", "rm", "-f", name], capture_output=True,
                                           timeout=120)
                            token = _cli(service.env, "workers", "add", name).strip()
                            _host(name, service, token)

                    try:
                        results[label] = _measure(service, remote)
                        results[label]["image_mb"] = 0.0 if "warm" in label else \
                            image_mb * count
                    finally:
                        for name in chosen:
                            subprocess.run(["docker", "rm", "-f", name], capture_output=True,
                                           timeout=120)
        finally:
            for name in [*hosts, *(f"{h}-pair" for h in hosts)]:
                subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=120)
                for kind in ("engine", "home"):
                    subprocess.run(["docker", "volume", "rm", "-f", f"{name}-{kind}"],
                                   capture_output=True, timeout=300)
    reference = results["shared"]["jobs_per_min"]
    for label, figures in results.items():
        jobs = figures["jobs"]
        moved = figures["data_mb"] + figures.get("image_mb", 0.0)
        rows.append(BenchRow(
            "multihost", f"{int(jobs)} jobs, {label if label != 'shared' else 'shared disk'}",
            figures["jobs_per_min"], "jobs/min",
            None if label == "shared" else reference,
            "" if label == "shared" else "shared disk",
            note=(f"{figures['wall_s'] / 60:.1f} min; pulling images "
                  f"{figures['image_share']:.0%}, data {figures['data_share']:.0%} of worker "
                  f"time; {moved / jobs:.1f} MB moved per job ({figures['data_mb'] / jobs:.1f}"
                  f" MB data)")))
    return rows
