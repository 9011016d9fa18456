"""Worker records and the workers listing, on SQLite and Postgres: host and GPUs as reported,
the jobs a worker runs now, heartbeat age and state, attempts finished in the last hour."""

from __future__ import annotations

from datetime import timedelta

from evaluator.store import (
    beat_worker,
    claim_job,
    fail_job,
    list_workers,
    register_worker,
    session_scope,
    stop_worker,
    utcnow,
)
from tests.store.factories import add_jobs, add_release, add_submission


def test_workers_listing_shows_host_gpus_jobs_heartbeat_and_throughput(engine) -> None:
    add_release(engine)
    jobs = add_jobs(engine, add_submission(engine).id)
    now = utcnow()
    with session_scope(engine) as session:
        register_worker(session, "gpu-1", host="node-a", pid=41, gpu_ids="0,1",
                        gpu_names="0: NVIDIA H100 80GB HBM3, 1: NVIDIA H100 80GB HBM3", slots=2,
                        now=now - timedelta(hours=3))
        register_worker(session, "cpu-1", host="node-b", pid=7, gpu_ids="", gpu_names="",
                        slots=1, now=now - timedelta(minutes=10))
        register_worker(session, "old", host="node-c", pid=9, gpu_ids="", gpu_names="",
                        slots=1, now=now - timedelta(days=1))
    with session_scope(engine) as session:
        assert beat_worker(session, "gpu-1", now=now - timedelta(seconds=4))
        assert not beat_worker(session, "never-registered", now=now)
        stop_worker(session, "old", now=now - timedelta(hours=20))
        # gpu-1 finished two attempts within the hour and one before it; runs one job now.
        for job_id, finished in ((jobs[0], now - timedelta(minutes=5)),
                                 (jobs[1], now - timedelta(minutes=50)),
                                 (jobs[2], now - timedelta(minutes=90))):
            claim = claim_job(session, job_id, "gpu-1", gpus=[0], now=finished)
            assert claim is not None
            fail_job(session, claim, "infra", "engine gone", outcome="engine_unavailable",
                     now=finished)
    with session_scope(engine) as session:
        assert claim_job(session, jobs[0], "gpu-1", gpus=[1], now=now) is not None
    with session_scope(engine) as session:
        views = {v.name: v for v in list_workers(session, lease_s=60, now=now)}
    assert list(views) == ["gpu-1", "cpu-1", "old"]  # newest heartbeat first
    gpu = views["gpu-1"]
    assert (gpu.host, gpu.pid, gpu.gpu_ids, gpu.slots, gpu.state) == ("node-a", 41, "0,1", 2,
                                                                      "alive")
    assert gpu.gpu_names.startswith("0: NVIDIA H100")
    assert gpu.heartbeat_age_s == 4.0
    assert [(j.job_id, j.gpus) for j in gpu.jobs] == [(jobs[0], "1")]
    assert gpu.jobs_last_hour == 2
    cpu = views["cpu-1"]
    assert (cpu.state, cpu.jobs, cpu.jobs_last_hour) == ("silent", [], 0)
    assert cpu.heartbeat_age_s == 600.0
    assert views["old"].state == "stopped"
    # A restart under the same name replaces the record and clears its stop.
    with session_scope(engine) as session:
        register_worker(session, "old", host="node-d", pid=10, gpu_ids="", gpu_names="",
                        slots=1, now=now)
        again = {v.name: v for v in list_workers(session, now=now)}["old"]
    assert (again.host, again.state, again.stopped_at) == ("node-d", "alive", None)


def test_worker_tokens_on_both_databases(engine) -> None:
    import pytest

    from evaluator.orchestrator import (
        AuthError,
        OrchestratorError,
        WrongTokenKind,
        add_worker_token,
        authenticate,
        authenticate_worker,
        create_team,
        issue_token,
        list_worker_tokens,
        revoke_worker_token,
    )

    with session_scope(engine) as session:
        secret = add_worker_token(session, "w1")
        create_team(session, "lab", admin=True)
        team_token = issue_token(session, "lab")
    with session_scope(engine) as session:
        assert authenticate_worker(session, secret) == "w1"
        with pytest.raises(WrongTokenKind, match="expected a worker token"):
            authenticate_worker(session, team_token)
        with pytest.raises(WrongTokenKind, match="expected a team's API token"):
            authenticate(session, secret)
        with pytest.raises(OrchestratorError, match="already has an active token"):
            add_worker_token(session, "w1")
    with session_scope(engine) as session:
        assert list_worker_tokens(session)[0].last_used_at is not None
        assert revoke_worker_token(session, "w1")
        assert not revoke_worker_token(session, "w1")
    with session_scope(engine) as session, pytest.raises(AuthError, match="revoked"):
        authenticate_worker(session, secret)
    with session_scope(engine) as session:
        again = add_worker_token(session, "w1")
    with session_scope(engine) as session:
        assert authenticate_worker(session, again) == "w1"
        with pytest.raises(AuthError, match="unknown"):
            authenticate_worker(session, secret)
        assert [t.name for t in list_worker_tokens(session)] == ["w1"]
