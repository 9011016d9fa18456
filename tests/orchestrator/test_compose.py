"""The scaled stack for real: scripts/stack.sh up (Debian's docker-compose, images built
offline), a baseline submitted through it, its results read from the stack's Postgres."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.store.dbsupport import REPO, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]


class Stack:
    """One compose project with its own name, ports and home folder."""

    def __init__(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.home = Path("/var/lib/spared-bench") / f"stack-test-{suffix}"
        self.env = {**os.environ, "SPARED_STACK_HOME": str(self.home),
                    "SPARED_STACK_PROJECT": f"sbtest{suffix}",
                    "SPARED_STACK_PG_PORT": str(_free_port()),
                    "SPARED_STACK_WEB_PORT": str(_free_port()),
                    "SPARED_STACK_REGISTRY_PORT": str(_free_port())}

    def run(self, *args: str, timeout_s: float = 900) -> str:
        done = subprocess.run(["bash", str(REPO / "scripts" / "stack.sh"), *args],
                              env=self.env, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
        if done.returncode != 0:
            pytest.fail(f"scripts/stack.sh {' '.join(args)} failed ({done.returncode}):\n"
                        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}", pytrace=False)
        return done.stdout

    def cli(self, *args: str) -> str:
        """Run `spared-bench ARGS` inside a worker container of the stack."""
        return self.run("exec", "-T", "worker", "spared-bench", *args, timeout_s=300)

    @property
    def database_url(self) -> str:
        return f"postgresql://spared:spared@127.0.0.1:{self.env['SPARED_STACK_PG_PORT']}/" \
               "spared_bench"

    def health(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.env['SPARED_STACK_WEB_PORT']}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def stack(docker_engine: Any) -> Iterator[Stack]:
    made = Stack()
    try:
        yield made
    finally:
        subprocess.run(["bash", str(REPO / "scripts" / "stack.sh"), "down", "--volumes"],
                       env=made.env, capture_output=True, timeout=300, check=False)
        shutil.rmtree(made.home, ignore_errors=True)


def test_stack_evaluates_a_baseline_into_postgres(stack: Stack, tiny_release: Any,
                                                  build_image: Any, docker_engine: Any) -> None:
    import psycopg

    stack.run("up", "2")
    assert stack.health()["status"] == "ok"
    # The web app as deployed: slow-loris connections hold no app thread.
    from tests.leaderboard.test_serve import _slow_loris

    loris = _slow_loris(f"http://127.0.0.1:{stack.env['SPARED_STACK_WEB_PORT']}", 10)
    try:
        for _ in range(3):
            for sock in loris:
                sock.sendall(b"X-Slow: 1\r\n")
            t0 = time.monotonic()
            assert stack.health()["status"] == "ok"
            assert time.monotonic() - t0 < 2
            time.sleep(1.5)
    finally:
        for sock in loris:
            sock.close()
    target = stack.home / "releases" / tiny_release.release_id
    shutil.copytree(tiny_release.root, target)
    image = build_image("ok")
    assert "is current" in stack.cli("data", "publish", tiny_release.release_id)
    receipt = json.loads(stack.cli("submit", image, "--name", "constant", "--team", "baselines",
                                   "--baseline", "--json"))
    assert receipt["jobs_queued"] == 6 and receipt["image_digest"] == image

    def rows(query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(stack.database_url, connect_timeout=5) as conn:
            return conn.execute(query).fetchall()

    wait_until(lambda: rows("select count(*) from jobs where status in ('queued', 'running')")
               == [(0,)], 240, "every job of the baseline to finish")
    assert rows("select status, count(*) from jobs group by status") == [("succeeded", 6)]
    results = rows("select dataset, track, image_digest, release_id from results")
    assert len(results) == 6
    assert {r[2] for r in results} == {image}
    assert {r[3] for r in results} == {tiny_release.release_id}
    # Two workers (compose replicas) shared the submission.
    assert len(rows("select distinct worker from jobs")) == 2
    table = stack.cli("results", "--release", "current", "--track", "raw", "--csv")
    assert table.count("baselines/constant") == 3

    # A model author: a token, then `spared-bench submit --server` streams a `docker save`
    # archive to the web app, whose API records it; the workers run it like any other.
    stack.cli("team", "create", "lab")
    token = stack.cli("team", "token", "lab").strip()
    other = build_image("ok", nonce="via-web")
    archive = stack.home.parent / f"{stack.home.name}-upload.tar"
    with open(archive, "wb") as out:
        for chunk in docker_engine.images.get(other).save(named=True):
            out.write(chunk)
    try:
        server = f"http://127.0.0.1:{stack.env['SPARED_STACK_WEB_PORT']}"
        done = subprocess.run(
            [str(Path(sys.executable).parent / "spared-bench"), "submit", str(archive),
             "--name", "via-web", "--server", server, "--token", token, "--json"],
            capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
        via_web = json.loads(done.stdout)
        assert (via_web["team"], via_web["image_digest"], via_web["jobs_queued"]) == \
            ("lab", other, 6)
        wrong = subprocess.run(
            [str(Path(sys.executable).parent / "spared-bench"), "status", "2", "--server",
             server, "--token", "sbt_wrong"], capture_output=True, text=True, check=False)
        assert wrong.returncode == 2 and "HTTP 401" in wrong.stderr
    finally:
        archive.unlink(missing_ok=True)
    wait_until(lambda: rows("select count(*) from jobs where status in ('queued', 'running')")
               == [(0,)], 240, "every job of the web submission to finish")
    assert rows(f"select count(*) from results where submission_id = "
                f"{via_web['submission_id']}") == [(6,)]

    # Through the stack's registry: `docker push` with the team token, the image removed from
    # this engine (the workers' engine), submitted by digest: the workers pull it.
    pushed = build_image("ok", nonce="via-registry")
    registry = f"127.0.0.1:{stack.env['SPARED_STACK_REGISTRY_PORT']}"
    asked = urllib.request.Request(f"{server}/api/registry",
                                   headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(asked, timeout=10) as response:
        info = json.loads(response.read())
    assert info["registry"] == registry
    target = f"{registry}/{info['namespace']}/via-registry:v1"
    docker_env = {**os.environ, "DOCKER_CONFIG": str(stack.home.parent / f"{stack.home.name}-dc")}
    try:
        login = subprocess.run(["docker", "login", registry, "-u", "lab", "--password-stdin"],
                               input=token, env=docker_env, capture_output=True, text=True,
                               timeout=60, check=False)
        assert login.returncode == 0, login.stderr
        subprocess.run(["docker", "tag", pushed, target], check=True, timeout=60)
        push = subprocess.run(["docker", "push", target], env=docker_env, capture_output=True,
                              text=True, timeout=600, check=False)
        assert push.returncode == 0, push.stderr
    finally:
        shutil.rmtree(docker_env["DOCKER_CONFIG"], ignore_errors=True)
    digest = push.stdout.split("digest: ")[1].split()[0]
    docker_engine.images.remove(pushed, force=True)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "spared-bench"), "submit",
         f"{target.rsplit(':', 1)[0]}@{digest}", "--name", "via-registry", "--server", server,
         "--token", token, "--json"], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    via_registry = json.loads(done.stdout)
    assert via_registry["image_digest"] == pushed and via_registry["jobs_queued"] == 6
    wait_until(lambda: rows("select count(*) from jobs where status in ('queued', 'running')")
               == [(0,)], 240, "every job of the pushed submission to finish")
    assert rows(f"select status, count(*) from jobs where submission_id = "
                f"{via_registry['submission_id']} group by status") == [("succeeded", 6)]
    assert docker_engine.images.get(pushed).id == pushed
