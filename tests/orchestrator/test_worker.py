"""Workers for real: `spared-bench worker` processes, real containers, real faults.

Killed workers (SIGKILL), an engine that is down or lost mid-job, a database that goes away,
two workers sharing a submission: every job ends with exactly one result or a clear failure.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import func, select

from evaluator.orchestrator import register_image, wait_for
from evaluator.store import Job, JobAttempt, Result, attempts_of, session_scope
from tests.orchestrator.conftest import BenchEnv, publish_small
from tests.orchestrator.proxy import EngineProxy
from tests.runners.conftest import leftover_volumes
from tests.store.dbsupport import private_postgres, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]

FAST = ["--lease-s", "4", "--heartbeat-s", "0.5", "--reap-interval-s", "1",
        "--retry-delay-s", "1", "--timeout-s", "120", "--mem-limit-gb", "1", "--cpus", "1"]


def _jobs(bench: Any) -> list[Job]:
    with session_scope(bench.engine) as session:
        return list(session.exec(select(Job).order_by(Job.id)))


def _results(bench: Any) -> int:
    with session_scope(bench.engine) as session:
        return int(session.exec(select(func.count()).select_from(Result)).one())


def _running_with_container(bench: Any) -> Job | None:
    return next((j for j in _jobs(bench)
                 if j.status == "running" and j.container_started_at is not None), None)


def _finish(bench: Any, env: BenchEnv, submission_id: int, timeout_s: float = 180) -> Any:
    try:
        return wait_for(bench, submission_id, timeout_s=timeout_s, poll_s=0.5)
    except Exception:
        for process_name in sorted(p.name for p in env.home.glob("worker-*.log")):
            print(process_name, (env.home / process_name).read_text()[-3000:])
        raise


def test_worker_runs_every_job_and_stores_each_result_once(
        published: BenchEnv, build_image: Any, remove_worker_containers: list[str]) -> None:
    bench = published.bench()
    image = build_image("ok")
    receipt = register_image(bench, image, name="constant", team="lab")
    assert receipt.jobs_queued == 6
    remove_worker_containers.append("w-all")
    published.start_worker("w-all", *FAST)
    status = _finish(bench, published, receipt.submission_id)
    assert status.counts == {"succeeded": 6}
    assert _results(bench) == 6
    for job in _jobs(bench):
        assert job.attempts == 1 and job.worker == "w-all"
        assert job.queued_at <= job.started_at <= job.container_started_at <= job.finished_at
    with session_scope(bench.engine) as session:
        attempt = session.exec(select(JobAttempt)).first()
        results = session.exec(select(Result)).all()
    assert {"queue_wait_s", "claim_s", "model_s", "score_s", "stage_s"} <= set(attempt.timings)
    assert "predicting" in attempt.log_text
    assert {r.image_digest for r in results} == {image}
    # A constant prediction: every gene is constant, PCC reported as 0 and counted.
    assert all(r.pcc_gene == 0.0 and r.constant_genes > 0 for r in results)
    # The job's /output/model.json is kept with the result (the leaderboard's Parameters).
    assert all(r.score["model_card"] == {"name": "constant", "notes": "",
                                         "parameters": {"trainable_parameters": 1}}
               for r in results)


def test_model_failure_is_final_and_its_log_reaches_the_author(
        sqlite_bench_env: BenchEnv, small_release: Any, build_image: Any,
        remove_worker_containers: list[str]) -> None:
    from evaluator.orchestrator import get_status

    bench = publish_small(sqlite_bench_env, small_release)
    receipt = register_image(bench, build_image("crash"), name="crash", team="lab")
    remove_worker_containers.append("w-crash")
    sqlite_bench_env.start_worker("w-crash", *FAST)
    _finish(bench, sqlite_bench_env, receipt.submission_id)
    status = get_status(bench, receipt.submission_id)
    assert status.counts == {"failed": 2}
    for job in status.jobs:
        assert (job.attempts, job.failure_kind) == (1, "model")
        assert "expected exit code 0, found 3" in job.message
        assert "model exploded" in (job.log_tail or "")
    assert _results(bench) == 0


def test_killed_worker_restarted_reruns_its_job_once(
        sqlite_bench_env: BenchEnv, small_release: Any, build_image: Any,
        remove_worker_containers: list[str], docker_engine: Any) -> None:
    bench = publish_small(sqlite_bench_env, small_release)
    receipt = register_image(bench, build_image("ok", sleep_s=4), name="slow", team="lab")
    remove_worker_containers.append("w-kill")
    # A long lease: only the restart (same name) can take the job back within the test.
    slow_lease = [*FAST, "--lease-s", "600"]
    first = sqlite_bench_env.start_worker("w-kill", *slow_lease)
    wait_until(lambda: _running_with_container(bench) is not None, 60, "a job's container")
    victim = _running_with_container(bench)
    assert victim is not None
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    from evaluator.orchestrator.execution import WORKER_LABEL
    from evaluator.runners.docker_runner import HOLDER_LABEL

    left = docker_engine.containers.list(all=True,
                                         filters={"label": f"{WORKER_LABEL}=w-kill"})
    jobs_left = [c for c in left if HOLDER_LABEL not in c.labels]
    assert len(jobs_left) == 1, "the killed worker's container outlives it"
    assert len(left) == 2  # with the holder of its /output volume
    sqlite_bench_env.start_worker("w-kill", *slow_lease)
    status = _finish(bench, sqlite_bench_env, receipt.submission_id)
    assert status.counts == {"succeeded": 2}
    assert _results(bench) == 2
    with session_scope(bench.engine) as session:
        attempts = attempts_of(session, victim.id)
    assert [a.outcome for a in attempts] == ["worker_lost", "succeeded"]
    assert "restarted while running it" in attempts[0].message
    assert "removing container" in sqlite_bench_env.worker_log("w-kill")
    assert not docker_engine.containers.list(all=True,
                                             filters={"label": f"{WORKER_LABEL}=w-kill"})
    assert not docker_engine.volumes.list(filters={"label": f"{WORKER_LABEL}=w-kill"})


def test_killed_worker_job_is_taken_over_after_its_lease(
        bench_env: BenchEnv, small_release: Any, build_image: Any,
        remove_worker_containers: list[str]) -> None:
    bench = publish_small(bench_env, small_release)
    receipt = register_image(bench, build_image("ok", sleep_s=4), name="slow", team="lab")
    remove_worker_containers.extend(["w-dies", "w-heir"])
    first = bench_env.start_worker("w-dies", *FAST)
    wait_until(lambda: _running_with_container(bench) is not None, 60, "a job's container")
    victim = _running_with_container(bench)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    bench_env.start_worker("w-heir", *FAST)
    status = _finish(bench, bench_env, receipt.submission_id)
    assert status.counts == {"succeeded": 2}
    assert _results(bench) == 2
    job = next(j for j in _jobs(bench) if j.id == victim.id)
    assert (job.attempts, job.worker) == (2, "w-heir")
    with session_scope(bench.engine) as session:
        first_attempt = attempts_of(session, victim.id)[0]
    assert first_attempt.outcome == "worker_lost"
    assert "worker w-dies stopped reporting" in first_attempt.message


def test_engine_down_spends_no_attempt_and_engine_lost_mid_job_is_retried(
        sqlite_bench_env: BenchEnv, small_release: Any, build_image: Any,
        remove_worker_containers: list[str]) -> None:
    bench = publish_small(sqlite_bench_env, small_release)
    receipt = register_image(bench, build_image("ok", sleep_s=3), name="slow", team="lab")
    remove_worker_containers.append("w-engine")
    proxy = EngineProxy(Path(sqlite_bench_env.home) / "docker.sock")
    env = {"DOCKER_HOST": proxy.url}
    # No engine at all: the worker puts jobs back without claiming them.
    worker = sqlite_bench_env.start_worker("w-engine", *FAST, env=env)
    wait_until(lambda: "no Docker engine answers" in sqlite_bench_env.worker_log("w-engine"),
               60, "the worker to notice the missing engine")
    assert all(j.status == "queued" and j.attempts == 0 for j in _jobs(bench))
    # The engine comes; then it is lost while a container runs, and comes back.
    proxy.start()
    wait_until(lambda: _running_with_container(bench) is not None, 60, "a job's container")
    victim = _running_with_container(bench)
    proxy.cut()
    wait_until(lambda: any(j.id == victim.id and j.attempts == 1 and j.status == "queued"
                           for j in _jobs(bench)), 60, "the lost attempt to be requeued")
    time.sleep(1.0)
    proxy.start()
    try:
        status = _finish(bench, sqlite_bench_env, receipt.submission_id)
    finally:
        proxy.cut()
    assert worker.poll() is None
    assert status.counts == {"succeeded": 2}
    assert _results(bench) == 2
    with session_scope(bench.engine) as session:
        attempts = attempts_of(session, victim.id)
    assert [a.outcome for a in attempts] == ["engine_unavailable", "succeeded"]


def test_one_submission_is_spread_over_two_workers(
        bench_env: BenchEnv, tiny_release: Any, build_image: Any,
        remove_worker_containers: list[str]) -> None:
    from evaluator.orchestrator import publish_release

    bench = bench_env.bench()
    publish_release(bench, tiny_release.release_id)
    receipt = register_image(bench, build_image("ok", sleep_s=2), name="slow", team="lab")
    remove_worker_containers.extend(["w-one", "w-two"])
    bench_env.start_worker("w-one", *FAST)
    bench_env.start_worker("w-two", *FAST)
    status = _finish(bench, bench_env, receipt.submission_id)
    assert status.counts == {"succeeded": 6}
    by_worker = {j.worker for j in _jobs(bench)}
    assert by_worker == {"w-one", "w-two"}
    assert _results(bench) == 6


def test_database_briefly_down_loses_no_result(
        tmp_path: Path, small_release: Any, build_image: Any,
        remove_worker_containers: list[str]) -> None:
    from evaluator.store import dispose_engines

    home = tmp_path / "home"
    home.mkdir()
    with private_postgres() as (url, cluster):
        env = BenchEnv(home, url, f"sqlite:///{home / 'queue.db'}", "private-postgres")
        try:
            bench = publish_small(env, small_release)
            receipt = register_image(bench, build_image("ok", sleep_s=3), name="slow",
                                     team="lab")
            remove_worker_containers.append("w-db")
            env.start_worker("w-db", *FAST)
            wait_until(lambda: _running_with_container(bench) is not None, 60,
                       "a job's container")
            cluster.stop()
            outage = threading.Timer(4.0, cluster.start)
            outage.start()
            outage.join()
            status = _finish(bench, env, receipt.submission_id)
            assert status.counts == {"succeeded": 2}
            assert _results(bench) == 2
            assert "database unavailable" in env.worker_log("w-db")
        finally:
            env.close()
            dispose_engines()


def test_gpu_slots_hand_out_distinct_gpus(sqlite_bench_env: BenchEnv) -> None:
    from evaluator.orchestrator.worker import Worker, WorkerOptions

    worker = Worker(sqlite_bench_env.settings(), WorkerOptions(name="g", gpus=(0, 1)))
    cpu = Worker(sqlite_bench_env.settings(), WorkerOptions(name="c"))
    assert (worker.options.slots, cpu.options.slots) == (2, 1)
    held: list[tuple[int, ...]] = []
    third_got: list[tuple[int, ...]] = []
    with worker._gpus() as a, worker._gpus() as b:
        held += [a, b]

        def third() -> None:
            with worker._gpus() as c:
                third_got.append(c)

        waiting = threading.Thread(target=third)
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive(), "a third job must wait for a free GPU"
    waiting.join(5)
    assert sorted(held) == [(0,), (1,)]
    assert third_got and third_got[0] in held
    with cpu._gpus() as none:
        assert none == ()
    worker.queue.close()
    cpu.queue.close()


@pytest.mark.parametrize("bench_env", ["postgres+redis"], indirect=True)
def test_image_that_cannot_start_fails_once_as_image_invalid(
        bench_env: BenchEnv, small_release: Any, docker_engine: Any, tmp_path: Path,
        remove_worker_containers: list[str]) -> None:
    from evaluator.orchestrator import get_status

    # intake cannot tell (the config names a program): only starting it shows it missing
    context = tmp_path / "unstartable-image"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nENTRYPOINT [\"/opt/model/run-predict\"]\n")
    from tests.orchestrator.conftest import BASE_IMAGE

    # its own tag, removed after: an identical image built by another test keeps its tags
    tag = f"spared-bench-test/{context.name}-{uuid.uuid4().hex[:8]}:1"
    image, _ = docker_engine.images.build(path=str(context), tag=tag, network_mode="none",
                                          rm=True, forcerm=True,
                                          buildargs={"BASE_IMAGE": BASE_IMAGE})
    volumes_before = {v.name for v in docker_engine.volumes.list()}
    try:
        bench = publish_small(bench_env, small_release)
        receipt = register_image(bench, image.id, name="unstartable", team="lab")
        remove_worker_containers.append("w-invalid")
        bench_env.start_worker("w-invalid", *FAST)
        _finish(bench, bench_env, receipt.submission_id)
        status = get_status(bench, receipt.submission_id)
        assert status.counts == {"failed": 2}
        for job in status.jobs:
            # the image's fault: final after one attempt, never retried as infrastructure
            assert (job.attempts, job.failure_kind) == (1, "model"), job
            assert "/opt/model/run-predict" in job.message
            assert "no such file or directory" in job.message
        with session_scope(bench.engine) as session:
            outcomes = [a.outcome for a in session.exec(select(JobAttempt))]
        assert outcomes == ["image_invalid", "image_invalid"]
        assert leftover_volumes(docker_engine, volumes_before) == []
    finally:
        bench_env.stop_workers()
        docker_engine.images.remove(tag)


def test_terminal_controls_reach_no_terminal_through_worker_and_status(
        sqlite_bench_env: BenchEnv, small_release: Any, docker_engine: Any,
        remove_worker_containers: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from evaluator.cli import main
    from tests.orchestrator.conftest import BASE_IMAGE

    context = Path(__file__).parents[1] / "jobs" / "images" / "terminal_escapes"
    # its own tag, removed after: an identical image built by another test keeps its tags
    tag = f"spared-bench-test/{context.name}-{uuid.uuid4().hex[:8]}:1"
    image, _ = docker_engine.images.build(path=str(context), tag=tag, network_mode="none",
                                          rm=True, forcerm=True,
                                          buildargs={"BASE_IMAGE": BASE_IMAGE})
    env = sqlite_bench_env
    try:
        bench = publish_small(env, small_release)
        receipt = register_image(bench, image.id, name="escapes", team="lab")
        remove_worker_containers.append("w-escapes")
        env.start_worker("w-escapes", *FAST)
        _finish(bench, env, receipt.submission_id)
        env.stop_workers()
        for key in ("SPARED_BENCH_HOME", "DATABASE_URL", "QUEUE_URL"):
            monkeypatch.setenv(key, env.env[key])
        capsys.readouterr()
        assert main(["status", str(receipt.submission_id)]) == 0
        out, err = capsys.readouterr()
    finally:
        docker_engine.images.remove(tag)
    worker_log = env.worker_log("w-escapes")
    for text in (out + err, worker_log):
        assert not any(c in text for c in ("\x1b", "\x07", "\r", "\x9b")), text[-2000:]
    assert "expected /output/predictions.npy, found no such file" in out
    assert "\\x1b]0;pwned title\\x07" in out  # the failed job's log, shown escaped
    assert "\\x1b]0;named\\x07.txt" in worker_log  # the job's message, logged escaped
