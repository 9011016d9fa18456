"""Real databases for tests: SQLite files and throwaway schemas on the test Postgres server.

The Postgres server is the one ``scripts/ensure_postgres.sh`` starts (``scripts/test.sh`` runs
it); ``SPARED_TEST_POSTGRES_URL`` points elsewhere. When it does not answer, the script is run
once from here; if it still does not answer the test fails (never skips).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("SPARED_TEST_POSTGRES_URL",
                              "postgresql://spared:spared@127.0.0.1:55432/spared_bench")
REDIS_URL = os.environ.get("SPARED_TEST_REDIS_URL", "redis://127.0.0.1:56379/0")

_checked: dict[str, bool] = {}


def _answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("select 1")
        return True
    except psycopg.OperationalError:
        return False


def postgres_server_url() -> str:
    """The test server's URL, after making sure it answers (running the ensure script once)."""
    if _checked.get(POSTGRES_URL):
        return POSTGRES_URL
    if not _answers(POSTGRES_URL):
        subprocess.run(["bash", str(REPO / "scripts" / "ensure_postgres.sh")], check=False,
                       capture_output=True, timeout=600)
        if not _answers(POSTGRES_URL):
            pytest.fail(f"expected the test Postgres at {POSTGRES_URL} to answer, found none; "
                        "run scripts/ensure_postgres.sh or set SPARED_TEST_POSTGRES_URL")
    _checked[POSTGRES_URL] = True
    return POSTGRES_URL


def redis_server_url() -> str:
    """The test Redis server's URL, after making sure it answers (running the script once)."""
    import redis

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping())
        except redis.exceptions.ConnectionError:
            return False

    if _checked.get(REDIS_URL):
        return REDIS_URL
    if not answers():
        subprocess.run(["bash", str(REPO / "scripts" / "ensure_redis.sh")], check=False,
                       capture_output=True, timeout=600)
        if not answers():
            pytest.fail(f"expected the test Redis at {REDIS_URL} to answer, found none; "
                        "run scripts/ensure_redis.sh or set SPARED_TEST_REDIS_URL")
    _checked[REDIS_URL] = True
    return REDIS_URL


@contextlib.contextmanager
def postgres_schema_url() -> Iterator[str]:
    """Yield a URL whose connections live in a fresh schema (dropped afterwards)."""
    import psycopg

    base = postgres_server_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'create schema "{schema}"')
    try:
        yield f"{base}?options={quote(f'-csearch_path={schema}')}"
    finally:
        from evaluator.store import dispose_engines

        dispose_engines()
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'drop schema "{schema}" cascade')


def sqlite_url(folder: Path) -> str:
    """A URL of a fresh SQLite file in ``folder``."""
    return f"sqlite:///{folder / f'bench-{uuid.uuid4().hex[:8]}.db'}"


@contextlib.contextmanager
def private_postgres() -> Iterator[tuple[str, PrivateCluster]]:
    """Yield (url, cluster) of a Postgres cluster of its own, for tests that stop the server.

    It lives in a fresh folder under the system temp dir, not pytest's ``tmp_path``: pytest
    keeps its base folder private to root (0700), which the ``postgres`` user cannot enter.
    """
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="spared-pg-"))
    folder.chmod(0o711)
    cluster = PrivateCluster(folder)
    try:
        cluster.create()
        cluster.start()
        yield cluster.url, cluster
    finally:
        cluster.stop(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


class PrivateCluster:
    """A throwaway Postgres cluster (initdb, pg_ctl) owned by the ``postgres`` user."""

    def __init__(self, folder: Path) -> None:
        self.root = folder / f"pg-{uuid.uuid4().hex[:8]}"
        self.data = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            pytest.fail("expected /usr/lib/postgresql/*/bin (Debian's postgresql), found none; "
                        "run scripts/ensure_postgres.sh")
        self.bin = bins[-1]

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def create(self) -> None:
        """initdb with trust authentication on loopback (a test cluster, gone afterwards)."""
        self.root.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(self.bin / "initdb", "-D", self.data, "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        """Start the server on 127.0.0.1 and wait until it accepts connections."""
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "log", "-w", "-t", "60",
                  "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}", "start")

    def stop(self, *, missing_ok: bool = False) -> None:
        """Stop the server (fast mode: connections are cut, as when a server goes down)."""
        result = self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop",
                           check=False)
        if result.returncode != 0 and not missing_ok:
            raise RuntimeError(f"pg_ctl stop failed: {result.stderr}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: object, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    """Poll ``predicate()`` until true; fail the test naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval_s)
    pytest.fail(f"expected {what} within {timeout_s:.0f} s, found it not so")
