"""A job's life on SQLite and Postgres: claims race, leases, results stored exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from evaluator.store import (
    Job,
    JobAttempt,
    Result,
    Submission,
    attempts_of,
    cancel_jobs,
    claim_job,
    complete_job,
    create_jobs,
    fail_job,
    heartbeat,
    mark_container_started,
    queued_job_ids,
    requeue_stale,
    requeue_worker_jobs,
    session_scope,
    utcnow,
)
from tests.store.factories import (
    RELEASE_A,
    RELEASE_B,
    add_jobs,
    add_release,
    add_submission,
    make_score,
)


def _job(engine, job_id: int) -> Job:
    with session_scope(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _count(engine, model) -> int:
    with session_scope(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_create_jobs_is_idempotent_and_retries_failed_on_request(engine) -> None:
    add_release(engine)
    submission = add_submission(engine)
    first = add_jobs(engine, submission.id)
    assert len(first) == 3
    assert add_jobs(engine, submission.id) == []
    assert _count(engine, Job) == 3
    with session_scope(engine) as session:
        claim = claim_job(session, first[0], "w1")
        assert claim is not None
        fail_job(session, claim, "model", "exit 1", outcome="exit_nonzero")
    entries = [("villacampa_lung_organoid", "raw")]
    with session_scope(engine) as session:
        again = create_jobs(session, submission.id, RELEASE_A, entries, max_attempts=3)
    assert again.to_enqueue == []
    assert "failed" in again.skipped["villacampa_lung_organoid/raw"]
    with session_scope(engine) as session:
        retry = create_jobs(session, submission.id, RELEASE_A, entries, max_attempts=3,
                            retry_failed=True)
    assert retry.to_enqueue == [first[0]]
    job = _job(engine, first[0])
    assert (job.status, job.attempts, job.failure_kind) == ("queued", 0, None)


def test_duplicate_digest_and_team_name_are_refused(engine) -> None:
    add_submission(engine, name="m1", digest="sha256:" + "1" * 64)
    with pytest.raises(IntegrityError):
        add_submission(engine, team="team-b", name="m2", digest="sha256:" + "1" * 64)
    with pytest.raises(IntegrityError):
        add_submission(engine, name="m1", digest="sha256:" + "2" * 64)
    assert _count(engine, Submission) == 1


def test_a_job_is_claimed_once_among_racing_workers(engine) -> None:
    add_release(engine)
    jobs = add_jobs(engine, add_submission(engine).id)
    claims: list[tuple[str, int]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def worker(name: str) -> None:
        barrier.wait()
        for job_id in jobs:
            with session_scope(engine) as session:
                claim = claim_job(session, job_id, name, gpus=[0])
            if claim is not None:
                with lock:
                    claims.append((name, claim.job_id))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(job_id for _, job_id in claims) == sorted(jobs)
    for _, job_id in claims:
        job = _job(engine, job_id)
        assert job.status == "running" and job.attempts == 1 and job.gpus == "0"
    assert _count(engine, JobAttempt) == len(jobs)


def test_complete_stores_one_result_even_when_two_workers_finish(engine) -> None:
    add_release(engine)
    submission = add_submission(engine)
    job_id = add_jobs(engine, submission.id)[0]
    with session_scope(engine) as session:
        first = claim_job(session, job_id, "w1")
    assert first is not None
    # w1 goes silent; its job is taken back and claimed by w2, then both finish.
    later = utcnow() + timedelta(seconds=120)
    with session_scope(engine) as session:
        moved = requeue_stale(session, lease_s=60, now=later)
    assert [(m.job_id, m.status) for m in moved] == [(job_id, "queued")]
    with session_scope(engine) as session:
        second = claim_job(session, job_id, "w2")
    assert second is not None and second.attempt == 2
    score = make_score(first.dataset, first.track)
    with session_scope(engine) as session:
        assert complete_job(session, second, score, timings={"model_s": 1.5}) is True
    with session_scope(engine) as session:
        assert complete_job(session, first, score) is False
    assert _count(engine, Result) == 1
    job = _job(engine, job_id)
    assert job.status == "succeeded" and job.lease_token is None
    with session_scope(engine) as session:
        attempts = attempts_of(session, job_id)
        result = session.exec(select(Result)).one()
    assert [a.outcome for a in attempts] == ["duplicate_result", "succeeded"]
    assert attempts[1].timings == {"model_s": 1.5}
    assert result.mse == pytest.approx(score.metrics.mse)
    assert result.image_digest == submission.image_digest
    assert result.score["provenance"]["dataset"] == first.dataset


def test_complete_refuses_a_score_of_another_entry(engine) -> None:
    add_release(engine)
    job_id = add_jobs(engine, add_submission(engine).id)[0]
    with session_scope(engine) as session:
        claim = claim_job(session, job_id, "w1")
        assert claim is not None
        with pytest.raises(ValueError, match="expected a score of"):
            complete_job(session, claim, make_score(claim.dataset, claim.track, RELEASE_B))


def test_model_failure_is_final_and_infra_failure_retries_up_to_the_bound(engine) -> None:
    add_release(engine)
    model_job, infra_job, _ = add_jobs(engine, add_submission(engine).id, max_attempts=2)
    with session_scope(engine) as session:
        claim = claim_job(session, model_job, "w1")
        assert claim is not None
        outcome = fail_job(session, claim, "model", "exit code 1", outcome="exit_nonzero",
                           log_text="Traceback ...")
    assert outcome.status == "failed"
    job = _job(engine, model_job)
    assert (job.status, job.failure_kind, job.message) == ("failed", "model", "exit code 1")
    with session_scope(engine) as session:
        assert claim_job(session, model_job, "w2") is None
        assert attempts_of(session, model_job)[0].log_text == "Traceback ..."

    statuses = []
    for _ in range(2):
        with session_scope(engine) as session:
            claim = claim_job(session, infra_job, "w1")
            assert claim is not None
            statuses.append(fail_job(session, claim, "infra", "engine gone",
                                     outcome="engine_unavailable").status)
    assert statuses == ["queued", "failed"]
    job = _job(engine, infra_job)
    assert job.failure_kind == "infra" and "gave up after 2 attempts" in job.message


def test_heartbeat_and_writes_need_the_current_lease(engine) -> None:
    add_release(engine)
    job_id = add_jobs(engine, add_submission(engine).id)[0]
    with session_scope(engine) as session:
        claim = claim_job(session, job_id, "w1")
        assert claim is not None
        assert heartbeat(session, claim) is True
        assert mark_container_started(session, claim, utcnow()) is True
    with session_scope(engine) as session:
        moved = requeue_worker_jobs(session, "w1")
    assert [m.status for m in moved] == ["queued"]
    with session_scope(engine) as session:
        assert heartbeat(session, claim) is False
        late = fail_job(session, claim, "model", "too late", outcome="exit_nonzero")
    assert late.status == "queued" and "lease lost" in late.message
    assert _job(engine, job_id).status == "queued"


def test_requeue_keeps_live_jobs_and_fails_past_the_bound(engine) -> None:
    add_release(engine)
    fresh, stale, _ = add_jobs(engine, add_submission(engine).id, max_attempts=1)
    with session_scope(engine) as session:
        assert claim_job(session, fresh, "w1") is not None
        assert claim_job(session, stale, "w2", now=utcnow() - timedelta(seconds=300))
    with session_scope(engine) as session:
        moved = requeue_stale(session, lease_s=60)
    assert [(m.job_id, m.status) for m in moved] == [(stale, "failed")]
    assert _job(engine, fresh).status == "running"
    job = _job(engine, stale)
    assert job.failure_kind == "infra" and "worker w2 stopped reporting" in job.message
    with session_scope(engine) as session:
        assert attempts_of(session, stale)[0].outcome == "worker_lost"


def test_restarted_worker_takes_back_only_its_dead_jobs(engine) -> None:
    add_release(engine)
    a, b, c = add_jobs(engine, add_submission(engine).id)
    with session_scope(engine) as session:
        keep = claim_job(session, a, "w1")
        assert keep is not None
        assert claim_job(session, b, "w1") is not None
        assert claim_job(session, c, "w2") is not None
    with session_scope(engine) as session:
        moved = requeue_worker_jobs(session, "w1", keep_tokens=[keep.lease_token])
    assert [m.job_id for m in moved] == [b]
    assert [_job(engine, j).status for j in (a, b, c)] == ["running", "queued", "running"]


def test_cancel_and_queued_ids(engine) -> None:
    add_release(engine)
    jobs = add_jobs(engine, add_submission(engine).id)
    with session_scope(engine) as session:
        assert claim_job(session, jobs[0], "w1") is not None
    submission_id = _job(engine, jobs[0]).submission_id
    with session_scope(engine) as session:
        assert queued_job_ids(session) == jobs[1:]
        assert queued_job_ids(session, older_than=utcnow() - timedelta(hours=1)) == []
        assert cancel_jobs(session, submission_id) == 2
    assert [_job(engine, j).status for j in jobs] == ["running", "cancelled", "cancelled"]


def test_a_retried_failed_job_is_claimed_again_after_its_earlier_attempts(engine) -> None:
    add_release(engine)
    submission = add_submission(engine)
    job_id = add_jobs(engine, submission.id, max_attempts=2)[0]
    for _ in range(2):
        with session_scope(engine) as session:
            claim = claim_job(session, job_id, "w1")
            assert claim is not None
            fail_job(session, claim, "infra", "engine gone", outcome="engine_unavailable")
    assert _job(engine, job_id).status == "failed"
    entries = [("villacampa_lung_organoid", "raw")]
    with session_scope(engine) as session:
        assert create_jobs(session, submission.id, RELEASE_A, entries, max_attempts=2,
                           retry_failed=True).to_enqueue == [job_id]
    # The earlier attempt rows stay; the next claim numbers its attempt after them.
    with session_scope(engine) as session:
        claim = claim_job(session, job_id, "w2")
    assert claim is not None and claim.attempt == 1
    with session_scope(engine) as session:
        assert complete_job(session, claim, make_score(claim.dataset, claim.track))
    with session_scope(engine) as session:
        attempts = attempts_of(session, job_id)
    assert [(a.attempt, a.outcome) for a in attempts] == [
        (1, "engine_unavailable"), (2, "engine_unavailable"), (3, "succeeded")]
    assert _job(engine, job_id).status == "succeeded"


HOSTILE = "ok\x00nul \ud800 lone \udcff surrogate"


def test_author_text_the_store_cannot_hold_is_cleaned_not_lost(engine) -> None:
    add_release(engine)
    job_ids = add_jobs(engine, add_submission(engine).id)
    with session_scope(engine) as session:
        claim = claim_job(session, job_ids[0], "w1")
    assert claim is not None
    deep: dict = {}
    node = deep
    for _ in range(200):
        node["x"] = {}
        node = node["x"]
    card = {"name": HOSTILE, "parameters": {"lr": float("nan"), HOSTILE: [float("inf")]},
            "notes": HOSTILE}
    with session_scope(engine) as session:
        assert complete_job(session, claim, make_score(claim.dataset, claim.track),
                            message=HOSTILE, log_text=HOSTILE * 100, model_card=card)
    with session_scope(engine) as session:
        result = session.exec(select(Result)).one()
        attempt = attempts_of(session, job_ids[0])[0]
    cleaned = "ok\ufffdnul \ufffd lone \ufffd surrogate"
    assert result.score["model_card"] == {"name": cleaned, "notes": cleaned, "parameters": {
        "lr": None, cleaned: [None]}}
    assert attempt.log_text == cleaned * 100 and attempt.message == cleaned
    # A card nested too deep to store is left out; the result is kept.
    with session_scope(engine) as session:
        claim = claim_job(session, job_ids[1], "w1")
        assert claim is not None
        assert complete_job(session, claim, make_score(claim.dataset, claim.track),
                            model_card={"name": "deep", "parameters": deep})
    with session_scope(engine) as session:
        stored = session.exec(select(Result).where(Result.job_id == job_ids[1])).one()
    assert "model_card" not in stored.score
    with session_scope(engine) as session:
        claim = claim_job(session, job_ids[2], "w1")
        assert claim is not None
        fail_job(session, claim, "model", HOSTILE, outcome="output_invalid", log_text=HOSTILE)
    job = _job(engine, job_ids[2])
    assert job.status == "failed" and job.message == cleaned
