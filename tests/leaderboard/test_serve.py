"""`spared-bench serve` (waitress, as the compose image runs it): pages and API over real HTTP,
the CLI's own client (`submit --server`) streaming an archive in chunks to
`POST /api/submissions`, slow clients that must not stall it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.leaderboard.conftest import LeaderboardEnv
from tests.orchestrator.archives import make_archive

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served(env: LeaderboardEnv, *args: str, **variables: str) -> Iterator[str]:
    """Run `spared-bench serve` on the env's store; yield its URL; stop it afterwards."""
    port = free_port()
    log = open(env.home / f"serve-{port}.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "spared-bench"), "serve", "--port", str(port),
         "--threads", "4", *args],
        env={**os.environ, "DATABASE_URL": env.url, "SPARED_BENCH_HOME": str(env.home),
             "QUEUE_URL": f"sqlite:///{env.home / 'queue.db'}", "OMP_NUM_THREADS": "1",
             **variables},
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("spared-bench serve did not answer: "
                            + (env.home / f"serve-{port}.log").read_text()[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.mark.slow
def test_serve_answers_pages_api_and_the_cli_client(fresh_env: LeaderboardEnv) -> None:
    from evaluator.orchestrator import ServerUnavailable
    from evaluator.orchestrator.client import get_submission_status, post_submission

    token = fresh_env.seeded.tokens["team-a"]
    with served(fresh_env, SPARED_LEADERBOARD_MAX_UPLOAD_MB="0.05") as url:
        page = requests.get(f"{url}/?track=spackle&genes=128", timeout=30)
        assert page.status_code == 200 and "vit-delta" in page.text
        board = requests.get(f"{url}/api/leaderboard", timeout=30).json()
        assert board["entries"][0]["entry"] == "team-a/vit-delta"
        assert requests.get(f"{url}/static/app.js", timeout=30).status_code == 200
        archive, image_id = make_archive(nonce="served")
        chunks = (archive[i:i + 4096] for i in range(0, len(archive), 4096))
        receipt = post_submission(url, token, chunks, name="served", description="over http")
        assert receipt.image_digest == image_id and receipt.jobs_queued == 6
        status = get_submission_status(url, token, receipt.submission_id)
        assert status.counts == {"queued": 6} and status.name == "served"
        big, _ = make_archive(nonce="too-big", layer_bytes=200_000)
        big_chunks = (big[i:i + 8192] for i in range(0, len(big), 8192))
        with pytest.raises(ServerUnavailable) as refused:
            post_submission(url, token, big_chunks, name="too-big")
        assert "HTTP 413: image archive: expected at most 0.05 MB" in str(refused.value)
        with pytest.raises(ServerUnavailable, match="401"):
            get_submission_status(url, "sbt_wrong", receipt.submission_id)


def test_serve_help_lists_its_options() -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "spared-bench"), "serve", "--help"],
                          capture_output=True, text=True, timeout=60, check=True, cwd=REPO)
    for option in ("--host", "--port", "--workers", "--threads", "--header-timeout-s",
                   "--upload-timeout-s", "--idle-timeout-s", "--dev"):
        assert option in done.stdout


def _slow_loris(url: str, count: int) -> list[socket.socket]:
    """Open ``count`` connections that have sent a request line and one header each."""
    host, port = url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sockets.append(sock)
    return sockets


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        sock.settimeout(0.1)
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


@pytest.mark.slow
def test_slow_clients_hold_no_thread_and_are_cut_off(fresh_env: LeaderboardEnv) -> None:
    # As the compose image serves: two processes; few threads, so that held threads would show.
    with served(fresh_env, "--workers", "2", "--threads", "2", "--header-timeout-s", "6") as url:
        loris = _slow_loris(url, 10)
        try:
            started = time.monotonic()
            while time.monotonic() - started < 5:
                for sock in loris:  # one more header line every second: never idle
                    sock.sendall(b"X-Slow: 1\r\n")
                t0 = time.monotonic()
                assert requests.get(f"{url}/healthz", timeout=3).status_code == 200
                assert time.monotonic() - t0 < 1.5
                time.sleep(1.0)
            # Past the header time limit, every trickling connection is closed.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not all(_closed_by_server(s) for s in loris):
                for sock in loris:
                    with contextlib.suppress(OSError):
                        sock.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.5)
            assert all(_closed_by_server(s) for s in loris)
        finally:
            for sock in loris:
                sock.close()


@pytest.mark.slow
def test_a_slow_honest_40_mb_upload_succeeds(fresh_env: LeaderboardEnv) -> None:
    token = fresh_env.seeded.tokens["team-a"]
    archive, image_id = make_archive(nonce="slow-upload", layer_bytes=40 * 2**20)
    chunk = 1 << 20
    description = "ü" * 10_000  # the API's own limit, far past a 4 KB request line

    def trickle() -> Iterator[bytes]:
        # About 35 s in all: past the 30 s a sync worker allowed a request.
        for i in range(0, len(archive), chunk):
            yield archive[i:i + chunk]
            time.sleep(35 / (len(archive) / chunk))

    with served(fresh_env, "--workers", "2", "--threads", "2") as url:
        started = time.monotonic()
        response = requests.post(
            f"{url}/api/submissions", params={"name": "slow", "description": description},
            data=trickle(), headers={"Authorization": f"Bearer {token}",
                                     "Content-Type": "application/x-tar"}, timeout=120)
        assert time.monotonic() - started > 30
        assert response.status_code == 201, response.text[:500]
        assert response.json()["image_digest"] == image_id
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200


@pytest.mark.slow
def test_an_upload_past_its_time_limit_is_cut_off(fresh_env: LeaderboardEnv) -> None:
    with served(fresh_env, "--upload-timeout-s", "4") as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /api/submissions?name=slow HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/x-tar\r\nContent-Length: 100000\r\n\r\n")
            started = time.monotonic()
            while not _closed_by_server(sock) and time.monotonic() - started < 20:
                with contextlib.suppress(OSError):
                    sock.sendall(b"x" * 100)  # never idle, never done
                time.sleep(0.4)
            assert _closed_by_server(sock)
            assert 3 < time.monotonic() - started < 12
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200


@pytest.mark.slow
def test_two_instances_share_nothing_on_disk(fresh_env: LeaderboardEnv, tmp_path: Path) -> None:
    # gunicorn put a control socket at ~/.gunicorn/gunicorn.ctl for every instance: a second
    # one took it over and removed it on exit. serve keeps no such file.
    home = tmp_path / "user-home"
    home.mkdir()
    with served(fresh_env, "--workers", "2", HOME=str(home)) as first:
        with served(fresh_env, HOME=str(home)) as second:
            assert requests.get(f"{second}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{first}/healthz", timeout=5).status_code == 200
        assert [p for p in home.rglob("*") if p.is_socket() or "gunicorn" in p.name] == []
