"""Fixtures of the orchestrator tests: a bench (store + queue) per test, on SQLite + SQLite
queue and on Postgres + Redis, the tiny release published in it, test images, worker processes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import build_test_release
from tests.store.dbsupport import (
    REPO,
    postgres_schema_url,
    redis_server_url,
    sqlite_url,
)

IMAGE_DIR = Path(__file__).parent / "images" / "predict"
BASE_VERSION = (REPO / "images" / "base" / "offline" / "VERSION").read_text().strip()
BASE_IMAGE = f"spared-bench/base:{BASE_VERSION}"
TEST_TAG = "spared-bench-test/orchestrator"


@dataclass
class BenchEnv:
    """A bench's settings as environment variables (for worker processes) and the bench."""

    home: Path
    database_url: str
    queue_url: str
    kind: str
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    benches: list[Any] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The environment a worker or CLI process of this bench runs with."""
        return {**os.environ, "SPARED_BENCH_HOME": str(self.home),
                "DATABASE_URL": self.database_url, "QUEUE_URL": self.queue_url,
                "SPARED_BENCH_PROGRESS": "0", "OMP_NUM_THREADS": "1"}

    def settings(self) -> Any:
        from evaluator.core.settings import Settings

        return Settings(home=self.home, database_url=self.database_url,
                        queue_url=self.queue_url)

    def bench(self) -> Any:
        from evaluator.orchestrator import Bench

        bench = Bench.open(self.settings())
        self.benches.append(bench)
        return bench

    def start_worker(self, name: str, *args: str, env: dict[str, str] | None = None
                     ) -> subprocess.Popen[bytes]:
        """Start ``spared-bench worker`` as a process; its log goes to home/<name>.log."""
        with open(self.home / f"worker-{name}.log", "ab") as log:
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "spared-bench"), "worker", "--name", name,
                 "--log-level", "INFO", *args],
                env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                cwd=REPO, start_new_session=True)
        self.workers.append(process)
        return process

    def worker_log(self, name: str) -> str:
        path = self.home / f"worker-{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Stop the workers and close every bench's queue connections."""
        self.stop_workers()
        for bench in self.benches:
            bench.close()

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.workers:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _release_into(home: Path, release: Any) -> None:
    target = home / "releases" / release.release_id
    target.parent.mkdir(parents=True, exist_ok=True)
    # Hard links: the release's files are read-only and identical; no copy needed.
    shutil.copytree(release.root, target, copy_function=os.link)


@pytest.fixture(params=["sqlite", "postgres+redis"])
def bench_env(request: pytest.FixtureRequest, tmp_path: Path, tiny_release: Any
              ) -> Iterator[BenchEnv]:
    """An empty bench holding the tiny release (built, not yet published)."""
    from evaluator.store import dispose_engines

    home = tmp_path / "home"
    home.mkdir()
    _release_into(home, tiny_release)
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            env = BenchEnv(home, sqlite_url(home), f"sqlite:///{home / 'queue.db'}", "sqlite")
        else:
            database_url = stack.enter_context(postgres_schema_url())
            queue_url = f"{redis_server_url()}?queue=test-{uuid.uuid4().hex[:12]}"
            env = BenchEnv(home, database_url, queue_url, "postgres+redis")
        try:
            yield env
        finally:
            if env.kind != "sqlite":
                with contextlib.suppress(Exception):
                    env.bench().queue.flush()
            env.close()
            dispose_engines()


@pytest.fixture
def sqlite_bench_env(tmp_path: Path, tiny_release: Any) -> Iterator[BenchEnv]:
    """A bench on SQLite only (for tests whose subject is not the backend)."""
    from evaluator.store import dispose_engines

    home = tmp_path / "home"
    home.mkdir()
    _release_into(home, tiny_release)
    env = BenchEnv(home, sqlite_url(home), f"sqlite:///{home / 'queue.db'}", "sqlite")
    try:
        yield env
    finally:
        env.close()
        dispose_engines()


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """A client of a running engine holding the offline base image (made when missing)."""
    from evaluator.runners import docker_client

    for script, args in (("ensure_docker.sh", []), ("build_base_image.sh", ["--no-torch"])):
        done = subprocess.run(["bash", str(REPO / "scripts" / script), *args],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"scripts/{script} failed:\n{done.stderr[-2000:]}", pytrace=False)
    with contextlib.closing(docker_client()) as client:
        yield client


@pytest.fixture(scope="session")
def build_image(docker_engine: Any) -> Any:
    """Build the test submission with build args; returns the image id (cached per args)."""
    built: dict[tuple[tuple[str, str], ...], str] = {}

    def build(mode: str = "ok", sleep_s: float = 0, nonce: str = "0") -> str:
        key = (("mode", mode), ("sleep", str(sleep_s)), ("nonce", nonce))
        if key not in built:
            tag = f"{TEST_TAG}:{mode}-{str(sleep_s).replace('.', '_')}-{nonce}"
            image, _ = docker_engine.images.build(
                path=str(IMAGE_DIR), tag=tag, network_mode="none", rm=True, forcerm=True,
                buildargs={"BASE_IMAGE": BASE_IMAGE, "MODE": mode, "SLEEP_S": str(sleep_s),
                           "NONCE": nonce})
            built[key] = image.id
        return built[key]

    return build


@pytest.fixture
def published(bench_env: BenchEnv, tiny_release: Any) -> BenchEnv:
    """``bench_env`` with the tiny release published (current)."""
    from evaluator.orchestrator import publish_release

    publish_release(bench_env.bench(), tiny_release.release_id)
    return bench_env


@pytest.fixture(scope="session")
def small_release(tmp_path_factory: pytest.TempPathFactory, tiny_processed_dir: Path) -> Any:
    """A release of one tiny dataset: two jobs (raw, spackle) per submission."""
    source = tiny_processed_dir / "villacampa_lung_organoid.h5ad"
    release, _ = build_test_release([source], tmp_path_factory.mktemp("releases-small"),
                               label="small", cache_dir=tmp_path_factory.mktemp("cache-small"))
    return release


def publish_small(env: BenchEnv, small_release: Any) -> Any:
    """Put the one-dataset release in the bench and publish it; returns the bench."""
    from evaluator.orchestrator import publish_release

    _release_into(env.home, small_release)
    bench = env.bench()
    publish_release(bench, small_release.release_id)
    return bench


@pytest.fixture
def remove_worker_containers(docker_engine: Any) -> Iterator[list[str]]:
    """Names of workers whose leftover job containers are removed after the test."""
    from evaluator.orchestrator.execution import WORKER_LABEL

    names: list[str] = []
    yield names
    for name in names:
        for container in docker_engine.containers.list(
                all=True, filters={"label": f"{WORKER_LABEL}={name}"}):
            with contextlib.suppress(Exception):
                container.remove(force=True)
