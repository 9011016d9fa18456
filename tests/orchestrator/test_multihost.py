"""Two worker hosts that share no filesystem with the service run one submission; one of them is
killed mid-job and the other finishes; exactly one result per job.

Each host is a container of ``spared-bench/worker-host:1`` with a Docker engine of its own
(its images and containers in a volume of its own) and no bind mount of the service's files: it
reaches the store (Postgres) and the queue (Redis) by URL, the release files through the
service's API by content address (its worker token), and the submission image through the
registry by digest (a pull token from the service). Traffic stays on this machine's loopback
(the hosts use the host's network namespace; their engines have no bridge).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from evaluator.orchestrator import wait_for
from evaluator.store import Job, JobAttempt, Result, session_scope
from tests.orchestrator.conftest import BenchEnv, publish_small
from tests.orchestrator.served import registry_service
from tests.store.dbsupport import REPO, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLI = str(Path(sys.executable).parent / "spared-bench")
HOST_IMAGE = "spared-bench/worker-host:1"
# Everything but CAP_SYS_RESOURCE, which this machine's own bounding set lacks (so
# --privileged cannot start here); the cgroup hierarchy for the host's engine's limits.
HOST_ARGS = ["--network", "host", "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
             "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
             "--security-opt", "systempaths=unconfined", "-v", "/sys/fs/cgroup:/sys/fs/cgroup",
             "--mount", "type=volume,dst=/var/lib/docker", "--tmpfs", "/run"]
WORKER_ARGS = ["--lease-s", "10", "--heartbeat-s", "1", "--reap-interval-s", "2",
               "--retry-delay-s", "1", "--timeout-s", "300", "--mem-limit-gb", "1",
               "--cpus", "1", "--log-level", "INFO"]


@pytest.fixture(scope="module")
def host_image(docker_engine: Any) -> str:
    """The worker-host image (built offline by scripts/stack.sh build when missing/stale)."""
    done = subprocess.run(["bash", str(REPO / "scripts" / "stack.sh"), "build"], cwd=REPO,
                          capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        pytest.fail(f"scripts/stack.sh build failed:\n{done.stderr[-3000:]}", pytrace=False)
    return HOST_IMAGE


@contextlib.contextmanager
def worker_hosts(count: int) -> Iterator[list[str]]:
    """Names for ``count`` host containers, removed (with their engines' volumes) after."""
    names = [f"sb-host-{uuid.uuid4().hex[:6]}-{i + 1}" for i in range(count)]
    try:
        yield names
    finally:
        for name in names:
            subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True,
                           timeout=120, check=False)


def _start_host(name: str, env: BenchEnv, url: str, token: str) -> None:
    variables = {"DATABASE_URL": env.database_url, "QUEUE_URL": env.queue_url,
                 "SPARED_BENCH_WORKER_TOKEN": token, "SPARED_BENCH_PROGRESS": "0",
                 "WORKER_HOST_ID": name, "OMP_NUM_THREADS": "1"}
    flags = [part for key, value in variables.items() for part in ("-e", f"{key}={value}")]
    subprocess.run(["docker", "run", "-d", "--name", name, *HOST_ARGS, *flags, HOST_IMAGE,
                    "spared-bench", "worker", "--name", name, "--server", url, *WORKER_ARGS],
                   check=True, capture_output=True, timeout=120)


def _logs(name: str) -> str:
    done = subprocess.run(["docker", "logs", name], capture_output=True, text=True,
                          timeout=60, check=False)
    return (done.stdout + done.stderr)[-4000:]


@pytest.mark.parametrize("bench_env", ["postgres+redis"], indirect=True)
def test_two_hosts_without_a_shared_disk_one_killed_mid_job(
        bench_env: BenchEnv, small_release: Any, build_image: Any, host_image: str) -> None:
    env = bench_env
    bench = publish_small(env, small_release)
    image = build_image("ok", sleep_s=20, nonce="multihost")
    with registry_service(env) as (url, _, service_env), worker_hosts(2) as hosts:
        assert subprocess.run([CLI, "team", "create", "lab"], env=service_env,
                              capture_output=True, timeout=60).returncode == 0
        token = subprocess.run([CLI, "team", "token", "lab"], env=service_env,
                               capture_output=True, text=True, timeout=60).stdout.strip()
        worker_tokens = {}
        for name in hosts:
            made = subprocess.run([CLI, "workers", "add", name], env=service_env,
                                  capture_output=True, text=True, timeout=60)
            assert made.returncode == 0, made.stderr
            worker_tokens[name] = made.stdout.strip()
        sent = subprocess.run([CLI, "submit", image, "--name", "slow", "--server", url,
                               "--json"], env={**service_env, "SPARED_BENCH_TOKEN": token},
                              capture_output=True, text=True, timeout=600)
        assert sent.returncode == 0, sent.stderr
        receipt = json.loads(sent.stdout)
        assert receipt["jobs_queued"] == 2

        # Host 1 alone first: it pulls the image and starts a job; then host 2 joins and
        # host 1 is killed (engine, worker and job container at once) while its job runs.
        first, second = hosts
        _start_host(first, env, url, worker_tokens[first])

        def running_on_first() -> bool:
            with session_scope(bench.engine) as session:
                jobs = session.exec(select(Job).where(Job.worker == first,
                                                      Job.status == "running")).all()
                return any(job.container_started_at is not None for job in jobs)

        wait_until(running_on_first, 300, f"a job running in a container on {first}")
        _start_host(second, env, url, worker_tokens[second])
        subprocess.run(["docker", "kill", first], check=True, capture_output=True, timeout=60)
        try:
            final = wait_for(bench, receipt["submission_id"], timeout_s=420, poll_s=1)
        except Exception:
            print(_logs(first), _logs(second))
            raise
        assert final.counts == {"succeeded": 2}, _logs(second)

        with session_scope(bench.engine) as session:
            results = session.exec(select(Result).where(
                Result.submission_id == receipt["submission_id"])).all()
            attempts = session.exec(select(JobAttempt).order_by(JobAttempt.id)).all()
            jobs = session.exec(select(Job).where(
                Job.submission_id == receipt["submission_id"])).all()
        # Exactly one result per job, both stored by the surviving host.
        assert sorted((r.dataset, r.track) for r in results) == \
            sorted((j.dataset, j.track) for j in jobs)
        assert {j.worker for j in jobs} == {second}
        killed = [a for a in attempts if a.worker == first]
        assert killed and all(a.outcome != "succeeded" for a in killed)
        # What travelled to the hosts: the job's files by content address.
        fetched = [a.timings.get("data_fetched_mb") for a in attempts if a.worker == second]
        assert fetched and all(isinstance(mb, float) for mb in fetched)
        assert sum(fetched) > 0

        # Neither host shares a folder with the service: only the cgroup hierarchy is bound.
        for name in hosts:
            mounts = json.loads(subprocess.run(
                ["docker", "inspect", "--format", "{{json .Mounts}}", name],
                capture_output=True, text=True, timeout=60, check=True).stdout)
            binds = {m["Source"] for m in mounts if m["Type"] == "bind"}
            assert binds == {"/sys/fs/cgroup"}, mounts
            assert not any(str(env.home) in m.get("Source", "") for m in mounts)
        assert os.path.isdir(env.home / "releases")  # the service's own, untouched by hosts


@pytest.mark.parametrize("bench_env", ["postgres+redis"], indirect=True)
def test_compose_worker_node_needs_only_urls(bench_env: BenchEnv, small_release: Any,
                                             build_image: Any, host_image: str,
                                             docker_engine: Any, tmp_path: Path) -> None:
    """compose.worker.yaml, as a node with nothing else of the stack runs it (its `cpu`
    profile; the `gpu` one differs by the GPU reservation): a pushed submission's jobs run
    there with the store, queue, service and registry reached by URL only."""
    env = bench_env
    bench = publish_small(env, small_release)
    image = build_image("ok", nonce="compose-node")
    node_home = tmp_path / "node-home"
    project = f"sbnode{uuid.uuid4().hex[:6]}"
    with registry_service(env) as (url, _, service_env):
        assert subprocess.run([CLI, "team", "create", "lab"], env=service_env,
                              capture_output=True, timeout=60).returncode == 0
        token = subprocess.run([CLI, "team", "token", "lab"], env=service_env,
                               capture_output=True, text=True, timeout=60).stdout.strip()
        made = subprocess.run([CLI, "workers", "add", "node-1"], env=service_env,
                              capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        sent = subprocess.run([CLI, "submit", image, "--name", "node", "--server", url,
                               "--json"], env={**service_env, "SPARED_BENCH_TOKEN": token},
                              capture_output=True, text=True, timeout=600)
        assert sent.returncode == 0, sent.stderr
        receipt = json.loads(sent.stdout)
        docker_engine.images.remove(image, force=True)
        node_env = {**os.environ, "DATABASE_URL": env.database_url,
                    "QUEUE_URL": env.queue_url, "SPARED_BENCH_SERVER": url,
                    "SPARED_BENCH_WORKER_TOKEN": made.stdout.strip(),
                    "SPARED_WORKER_NAME": "node-1", "SPARED_WORKER_HOME": str(node_home),
                    "SPARED_WORKER_NETWORK": "host"}
        compose = ["docker-compose", "-p", project, "-f", str(REPO / "compose.worker.yaml"),
                   "--profile", "cpu"]
        try:
            up = subprocess.run([*compose, "up", "-d"], env=node_env, capture_output=True,
                                text=True, timeout=300)
            assert up.returncode == 0, up.stderr
            final = wait_for(bench, receipt["submission_id"], timeout_s=300, poll_s=1)
            logs = subprocess.run([*compose, "logs", "--tail", "40"], env=node_env,
                                  capture_output=True, text=True, timeout=60).stdout
            assert final.counts == {"succeeded": 2}, logs
        finally:
            subprocess.run([*compose, "down", "-v"], env=node_env, capture_output=True,
                           timeout=300)
    with session_scope(bench.engine) as session:
        jobs = session.exec(select(Job).where(
            Job.submission_id == receipt["submission_id"])).all()
    assert {j.worker for j in jobs} == {"node-1"}
    # Its files came by content address into its own folder, never from the service's.
    assert (node_home / "worker-cache" / "blobs").is_dir()
    assert not (node_home / "releases").exists()
