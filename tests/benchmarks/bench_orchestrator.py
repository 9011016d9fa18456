"""The orchestrator end to end: the four baselines on the `demo` release through queue and workers.

Throughput: the four baseline images (mean, knn, ridge, cnn-delta) are registered as baselines
and the demo release is published (5 datasets × 2 tracks × 4 = 40 jobs; ``--quick``: the 2
smallest datasets, 16 jobs); 1 and then 2 `spared-bench worker` processes (SQLite store and
queue, the embedded default) run them. Figures: jobs/min and total minutes, next to the same
jobs run back to back in this process by the job pipeline alone (``evaluator.jobs.run_jobs``,
no queue, no database; after one untimed warm-up job per baseline), and the share of the
jobs' wall time (claim to result stored) spent in orchestration (claim, staging, engine
overhead, database writes), the model, and scoring (output validation + metrics).

Queue latency: with one idle worker, jobs are enqueued one at a time and the time from enqueue to
the job's container start is taken from the database (median and p95), on the SQLite queue and on
Redis, next to the worker's own part of it (claim to container start).

Two shared cores: the 2-worker figures show contention as much as parallelism.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from evaluator.core.settings import Settings
from tests.benchmarks.harness import BenchRow, build_demo_release

REPO = Path(__file__).resolve().parents[2]
BASELINES = ("mean", "knn", "ridge", "cnn-delta")
WORKER_ARGS = ["--timeout-s", "900", "--mem-limit-gb", "4", "--cpus", "1", "--lease-s", "120",
               "--heartbeat-s", "5", "--log-level", "WARNING"]
LATENCY_SAMPLES = 12


def _image(name: str) -> str:
    return f"spared-bench/baseline-{name}:1"


class _Bench:
    """A fresh home with the release, its store and queue, and worker processes."""

    def __init__(self, root: Path, release: Any, queue_url: str | None = None) -> None:
        self.home = root / f"home-{uuid.uuid4().hex[:6]}"
        (self.home / "releases").mkdir(parents=True)
        shutil.copytree(release.root, self.home / "releases" / release.release_id,
                        copy_function=os.link)
        self.settings = Settings(home=self.home, queue_url=queue_url, progress=False)
        self.release = release
        self.workers: list[subprocess.Popen[bytes]] = []
        from evaluator.orchestrator import Bench

        self.bench = Bench.open(self.settings)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SPARED_BENCH_HOME": str(self.home),
                "DATABASE_URL": self.settings.resolved_database_url,
                "QUEUE_URL": self.settings.resolved_queue_url, "SPARED_BENCH_PROGRESS": "0",
                "OMP_NUM_THREADS": "1"}

    def start_workers(self, count: int) -> None:
        for i in range(count):
            with open(self.home / f"worker-{i}.log", "ab") as log:
                self.workers.append(subprocess.Popen(
                    [str(Path(sys.executable).parent / "spared-bench"), "worker", "--name",
                     f"bench-{i}", *WORKER_ARGS], env=self.env, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True))

    def wait_idle_workers(self) -> None:
        """Give worker processes time to import and connect (they log nothing at WARNING)."""
        time.sleep(6.0)

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.bench.close()

    def jobs(self) -> list[Any]:
        from sqlmodel import select

        from evaluator.store import Job, session_scope

        with session_scope(self.bench.engine) as session:
            return list(session.exec(select(Job)))

    def wait_done(self, timeout_s: float) -> list[Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            jobs = self.jobs()
            if jobs and all(j.status not in {"queued", "running"} for j in jobs):
                failed = [j for j in jobs if j.status != "succeeded"]
                if failed:
                    raise RuntimeError(f"benchmark job {failed[0].id} {failed[0].dataset}/"
                                       f"{failed[0].track}: {failed[0].message}")
                return jobs
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs not done within {timeout_s:.0f} s: "
                                   f"{[j.status for j in jobs]}")
            time.sleep(0.25)


def _register_baselines(bench: _Bench) -> None:
    from evaluator.orchestrator import register_image

    for name in BASELINES:
        # The workers share this engine: no archive needed for other engines.
        register_image(bench.bench, _image(name), name=name, team="baselines", baseline=True,
                       keep_archive=False)


def _shares(bench: _Bench, jobs: list[Any]) -> dict[str, float]:
    from evaluator.store import attempts_of, session_scope

    wall = model = scoring = 0.0
    with session_scope(bench.bench.engine) as session:
        for job in jobs:
            timings = attempts_of(session, job.id)[-1].timings
            wall += (job.finished_at - job.started_at).total_seconds()
            model += timings.get("model_s", 0.0)
            scoring += timings.get("score_s", 0.0) + timings.get("validate_s", 0.0)
    return {"wall_s": wall, "model": model / wall, "scoring": scoring / wall,
            "orchestration": (wall - model - scoring) / wall}


def _direct_s(root: Path, release: Any) -> tuple[float, int]:
    """The same jobs back to back through the job pipeline alone (no queue, no database)."""
    from evaluator.jobs import DockerExecutor, TaskSettings, plan_jobs, run_jobs
    from evaluator.runners import RunLimits, docker_client

    settings = TaskSettings(time_limit_s=900, device="cpu", seed=0)
    limits = RunLimits(timeout_s=900, mem_limit_gb=4, cpus=1)
    plans = plan_jobs(release, None, None)
    client = docker_client()
    # Warm-up, not timed: image layers, the scorer's JIT, torch's first import in cnn-delta.
    for name in BASELINES:
        run_jobs(DockerExecutor(_image(name), client=client), release, plans[:1],
                 purpose="evaluation", settings=settings, limits=limits,
                 staging_root=root / "warmup-staging", work_dir=root)
    start = time.perf_counter()
    count = 0
    for name in BASELINES:
        results = run_jobs(DockerExecutor(_image(name), client=client), release, plans,
                           purpose="evaluation", settings=settings, limits=limits,
                           staging_root=root / "direct-staging", work_dir=root)
        bad = [r for r in results if not r.succeeded]
        if bad:
            raise RuntimeError(f"direct run of {name} failed: {bad[0].message}")
        count += len(results)
    return time.perf_counter() - start, count


def _throughput(root: Path, release: Any, workers: int) -> tuple[float, int, dict[str, float]]:
    bench = _Bench(root, release)
    try:
        _register_baselines(bench)
        bench.start_workers(workers)
        bench.wait_idle_workers()
        from evaluator.orchestrator import publish_release

        start = time.perf_counter()
        publish_release(bench.bench, release.release_id)
        jobs = bench.wait_done(timeout_s=3600)
        wall_s = time.perf_counter() - start
        return wall_s, len(jobs), _shares(bench, jobs)
    finally:
        bench.stop()


def _latency(root: Path, release: Any, queue_url: str | None) -> tuple[list[float], list[float]]:
    """Enqueue→container-start and claim→container-start seconds of jobs enqueued one by one."""
    from sqlmodel import select

    from evaluator.orchestrator.service import queue_submission
    from evaluator.store import ReleaseRecord, Submission, session_scope

    bench = _Bench(root, release, queue_url)
    try:
        from evaluator.orchestrator import publish_release, register_image

        publish_release(bench.bench, release.release_id)
        for name in ("mean", "knn", "ridge"):
            register_image(bench.bench, _image(name), name=name, team="lab", keep_archive=False)
        # register_image queued their jobs at once: drop them, then enqueue one at a time.
        from sqlalchemy import delete

        from evaluator.store import Job

        with session_scope(bench.bench.engine) as session:
            session.exec(delete(Job))
        bench.bench.queue.flush()
        bench.start_workers(1)
        bench.wait_idle_workers()
        to_run: list[int] = []
        with session_scope(bench.bench.engine) as session:
            record = session.get(ReleaseRecord, release.release_id)
            for submission in session.exec(select(Submission)):
                to_run += queue_submission(bench.bench, session, submission, record,
                                           retry_failed=False).to_enqueue
        enqueue_to_start: list[float] = []
        claim_to_start: list[float] = []
        for job_id in to_run[:LATENCY_SAMPLES]:
            from evaluator.store import utcnow

            with session_scope(bench.bench.engine) as session:
                job = session.get(Job, job_id)
                job.queued_at = utcnow()
                session.add(job)
            bench.bench.queue.enqueue([job_id])
            deadline = time.monotonic() + 600
            while True:
                with session_scope(bench.bench.engine) as session:
                    job = session.get(Job, job_id)
                if job.status not in {"queued", "running"}:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"latency job {job_id} did not finish")
                time.sleep(0.1)
            if job.container_started_at is None:
                raise RuntimeError(f"latency job {job_id}: {job.status}: {job.message}")
            enqueue_to_start.append((job.container_started_at - job.queued_at).total_seconds())
            claim_to_start.append((job.container_started_at - job.started_at).total_seconds())
            # an idle worker again: the next message finds it waiting, as a fresh one would
            time.sleep(1.5)
        return enqueue_to_start, claim_to_start
    finally:
        bench.stop()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run(quick: bool = False) -> list[BenchRow]:
    """Run the benchmark (``quick``: two small demo datasets)."""
    subprocess.run(["bash", str(REPO / "scripts/build_baselines.sh")], check=True,
                   capture_output=True)
    redis_url = subprocess.run(["bash", str(REPO / "scripts/ensure_redis.sh")], check=True,
                               capture_output=True, text=True).stdout.strip()
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-orchestrator-") as tmp:
        root = Path(tmp)
        release = build_demo_release(root, quick)
        case = f"demo {len(release.datasets)} datasets x 2 tracks x 4 baselines"
        direct_s, n_direct = _direct_s(root, release)
        direct_rate = n_direct / (direct_s / 60)
        for workers in (1, 2):
            wall_s, n_jobs, shares = _throughput(root, release, workers)
            rate = n_jobs / (wall_s / 60)
            rows += [
                BenchRow("orchestrator", f"{case}: {workers} worker(s), jobs/min", rate,
                         "jobs/min", direct_rate, "pipeline alone, back to back",
                         note=f"{n_jobs} jobs in {wall_s / 60:.2f} min"),
                BenchRow("orchestrator", f"{case}: {workers} worker(s), total", wall_s / 60,
                         "min", direct_s / 60, "pipeline alone, back to back",
                         note=(f"of job wall time: orchestration {shares['orchestration']:.0%}, "
                               f"model {shares['model']:.0%}, scoring {shares['scoring']:.0%}")),
            ]
        latencies = {}
        for label, url in (("sqlite", None), ("redis", f"{redis_url}?queue=bench-"
                                                       f"{uuid.uuid4().hex[:8]}")):
            latencies[label] = _latency(root, release, url)
        for label, (to_start, worker_part) in latencies.items():
            rows += [
                BenchRow("orchestrator", f"queue latency {label}: enqueue->container, median",
                         statistics.median(to_start), "s", statistics.median(worker_part),
                         "claim->container (worker's part)", note=f"{len(to_start)} jobs"),
                BenchRow("orchestrator", f"queue latency {label}: enqueue->container, p95",
                         _p95(to_start), "s", _p95(worker_part),
                         "claim->container (worker's part)"),
            ]
        sqlite_median = statistics.median(latencies["sqlite"][0])
        redis_median = statistics.median(latencies["redis"][0])
        rows.append(BenchRow("orchestrator", "queue latency: redis vs sqlite, median",
                             redis_median, "s", sqlite_median, "sqlite median"))
    return rows
