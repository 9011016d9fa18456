"""A job's life in the database: created, claimed under a lease, heart-beaten, finished.

Every transition is one conditional UPDATE, so several workers (threads, processes, machines)
can race on a job and exactly one wins:
- ``claim_job``: ``queued`` → ``running`` with a fresh ``lease_token``; only one claim succeeds.
- ``heartbeat`` keeps the lease; a worker killed mid-job stops beating, and ``requeue_stale``
  (run by any live worker) puts the job back in the queue or, past ``max_attempts``, fails it.
- ``complete_job`` inserts the result with ON CONFLICT DO NOTHING (unique entry) and marks the job
  succeeded in the same transaction: a result exists if and only if the job succeeded, and a
  worker presumed dead that finishes late cannot store a second one.
- ``fail_job``: a model's own failure is final; an infrastructure failure is requeued while
  attempts remain.
Functions take a session and do not commit; wrap them in ``db.with_retry`` or ``session_scope``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from evaluator.core.text import MAX_JSON_DEPTH, JsonDepthError, clean_json, clean_text
from evaluator.core.vocabulary import INTERVAL_COLUMNS
from evaluator.scoring import JobScore
from evaluator.store.errors import NotFound
from evaluator.store.models import (
    FailureKind,
    Job,
    JobAttempt,
    Result,
    Submission,
    utcnow,
)


@dataclass(frozen=True)
class Claim:
    """A worker's hold on a job: what to run and the lease token its writes must carry."""

    job_id: int
    attempt: int
    attempt_id: int
    lease_token: str
    worker: str
    gpus: tuple[int, ...]
    submission_id: int
    release_id: str
    dataset: str
    track: str
    image_digest: str
    image_ref: str
    max_attempts: int
    queued_at: datetime
    started_at: datetime
    run: int = 0


@dataclass(frozen=True)
class Requeued:
    """What ``requeue_stale`` or ``fail_job`` did with one job."""

    job_id: int
    status: str
    attempts: int
    message: str = ""


@dataclass
class NewJobs:
    """What ``create_jobs`` did: ids to enqueue, and entries left alone (with why)."""

    to_enqueue: list[int] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _gpus_text(gpus: Sequence[int]) -> str:
    return ",".join(str(g) for g in gpus)


def create_jobs(
    session: Session,
    submission_id: int,
    release_id: str,
    entries: Iterable[tuple[str, str]],
    *,
    max_attempts: int,
    retry_failed: bool = False,
    now: datetime | None = None,
    run: int = 0,
) -> NewJobs:
    """Queue one job per (dataset, track) of ``submission_id`` on ``release_id`` (``run`` 0: the
    ranked evaluation; 1, 2, ...: re-runs for reproducibility).

    An entry that already has a job of that run is left alone (the job is unique per entry and
    run), except a failed or cancelled one when ``retry_failed``: it is reset to ``queued`` with
    its attempts cleared. Returns the ids to put on the queue. Does not enqueue.
    """
    now = now or utcnow()
    existing = {(j.dataset, j.track): j for j in session.exec(
        select(Job).where(Job.submission_id == submission_id, Job.release_id == release_id,
                          Job.run == run))}
    outcome = NewJobs()
    for dataset, track in entries:
        key = f"{dataset}/{track}"
        job = existing.get((dataset, track))
        if job is None:
            job = Job(submission_id=submission_id, release_id=release_id, dataset=dataset,
                      track=track, max_attempts=max_attempts, queued_at=now, run=run)
            session.add(job)
            session.flush()
            outcome.to_enqueue.append(int(job.id or 0))
        elif job.status in {"failed", "cancelled"} and retry_failed:
            session.exec(update(Job).where(col(Job.id) == job.id).values(
                status="queued", attempts=0, max_attempts=max_attempts, failure_kind=None,
                message="", queued_at=now, started_at=None, container_started_at=None,
                finished_at=None, heartbeat_at=None, worker=None, lease_token=None))
            outcome.to_enqueue.append(int(job.id or 0))
        else:
            outcome.skipped[key] = f"job {job.id} is {job.status}"
    return outcome


def claim_job(session: Session, job_id: int, worker: str, gpus: Sequence[int] = (),
              *, now: datetime | None = None) -> Claim | None:
    """Take a queued job for ``worker``; None when it is not queued (taken, final or gone).

    Increments ``attempts`` (this round's count, compared with ``max_attempts``), sets a fresh
    lease token and heartbeat, records a ``JobAttempt`` numbered after every earlier one.
    """
    now = now or utcnow()
    token = uuid.uuid4().hex
    result = session.exec(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status) == "queued")
        .values(status="running", attempts=col(Job.attempts) + 1, lease_token=token,
                worker=worker, gpus=_gpus_text(gpus), started_at=now, heartbeat_at=now,
                container_started_at=None, finished_at=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    job = session.exec(select(Job).where(Job.id == job_id)
                       .execution_options(populate_existing=True)).one()
    submission = session.get(Submission, job.submission_id)
    if submission is None:
        raise NotFound("submission", job.submission_id, f"job {job_id} refers to it")
    # Attempt rows number every run of the job, across re-evaluations (``create_jobs`` with
    # ``retry_failed`` starts ``attempts`` again at 0 but keeps the earlier rows).
    last = session.exec(select(func.max(JobAttempt.attempt))
                        .where(JobAttempt.job_id == job_id)).one()
    attempt = JobAttempt(job_id=job_id, attempt=int(last or 0) + 1, worker=worker,
                         gpus=_gpus_text(gpus), lease_token=token, started_at=now)
    session.add(attempt)
    session.flush()
    session.exec(update(Job).where(col(Job.id) == job_id)
                 .values(log_ref=f"attempt:{attempt.id}")
                 .execution_options(synchronize_session=False))
    return Claim(
        job_id=job_id, attempt=job.attempts, attempt_id=int(attempt.id or 0), lease_token=token,
        worker=worker, gpus=tuple(gpus), submission_id=job.submission_id,
        release_id=job.release_id, dataset=job.dataset, track=job.track,
        image_digest=submission.image_digest, image_ref=submission.image_ref,
        max_attempts=job.max_attempts, queued_at=job.queued_at, started_at=now, run=job.run,
    )


def heartbeat(session: Session, claim: Claim, *, now: datetime | None = None) -> bool:
    """Renew the lease; False when the worker no longer holds the job (requeued, finished)."""
    result = session.exec(
        update(Job)
        .where(col(Job.id) == claim.job_id, col(Job.lease_token) == claim.lease_token,
               col(Job.status) == "running")
        .values(heartbeat_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def mark_container_started(session: Session, claim: Claim, at: datetime) -> bool:
    """Record when the job's container started (queue latency is measured up to here)."""
    result = session.exec(
        update(Job)
        .where(col(Job.id) == claim.job_id, col(Job.lease_token) == claim.lease_token)
        .values(container_started_at=at)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _finish_attempt(session: Session, claim: Claim, outcome: str, message: str, log_text: str,
                    timings: dict[str, float], now: datetime) -> None:
    session.exec(
        update(JobAttempt)
        .where(col(JobAttempt.id) == claim.attempt_id)
        .values(finished_at=now, outcome=outcome, message=clean_text(message),
                log_text=clean_text(log_text), timings=clean_json(
                    {k: round(float(v), 6) for k, v in timings.items()}))
        .execution_options(synchronize_session=False)
    )


def result_values(claim: Claim, score: JobScore,
                  model_card: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``results`` row of a job's score; ``model_card`` is the job's /output/model.json.

    The card is author JSON: its strings are cleaned, non-finite numbers become null, and a card
    nested too deep to store is left out (``clean_json``).
    """
    try:
        card = clean_json(model_card) if model_card else None
    except JsonDepthError:
        card = None
    return {
        "job_id": claim.job_id, "submission_id": claim.submission_id,
        "release_id": claim.release_id, "dataset": claim.dataset, "track": claim.track,
        "run": claim.run, **score.metric_values(),
        **{column: getattr(score.interval, column) if score.interval else None
           for column in INTERVAL_COLUMNS},
        "block_stats": score.block_stats,
        "predictions_sha256": score.predictions_sha256,
        "n_spots": score.n_spots, "n_genes": score.n_genes, "n_measured": score.n_measured,
        "image_digest": claim.image_digest,
        "scorer_version": score.provenance.scorer_version,
        "scored_at": score.provenance.scored_at_utc,
        "created_at": utcnow(),
        "score": clean_json({**score.model_dump(mode="json"),
                             **({"model_card": card} if card else {})},
                            limit=2 * MAX_JSON_DEPTH),
    }


def insert_result(session: Session, values: dict[str, Any]) -> bool:
    """Insert a result unless its entry (or job) already has one; True when inserted."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # RETURNING, not rowcount: the ORM insert path does not report rowcount on every driver.
    statement = (insert(Result).values(**values).on_conflict_do_nothing()
                 .returning(Result.__table__.c.id))  # type: ignore[attr-defined]
    return session.exec(statement).first() is not None


def complete_job(session: Session, claim: Claim, score: JobScore, *, message: str = "",
                 log_text: str = "", timings: dict[str, float] | None = None,
                 now: datetime | None = None, model_card: dict[str, Any] | None = None) -> bool:
    """Store the job's result (once) and mark it succeeded; True when this call stored it.

    ``model_card`` (the job's ``/output/model.json``) is kept in the result's ``score`` JSON,
    where the leaderboard reads the entry's parameters.

    The score's provenance must name the claim's release, dataset and track (``ValueError``
    otherwise: a mix-up here would publish a score under the wrong entry).
    """
    now = now or utcnow()
    got = (score.provenance.release_id, score.provenance.dataset, score.provenance.track)
    if got != (claim.release_id, claim.dataset, claim.track):
        raise ValueError(f"job {claim.job_id}: expected a score of "
                         f"{(claim.release_id, claim.dataset, claim.track)}, found one of {got}")
    stored = insert_result(session, result_values(claim, score, model_card))
    session.exec(
        update(Job)
        .where(col(Job.id) == claim.job_id, col(Job.status) != "succeeded")
        .values(status="succeeded", failure_kind=None, message=clean_text(message),
                finished_at=now,
                lease_token=None)
        .execution_options(synchronize_session=False)
    )
    _finish_attempt(session, claim, "succeeded" if stored else "duplicate_result",
                    message if stored else "a result for this entry was already stored",
                    log_text, timings or {}, now)
    return stored


def fail_job(session: Session, claim: Claim, kind: FailureKind, message: str, *,
             outcome: str, log_text: str = "", timings: dict[str, float] | None = None,
             now: datetime | None = None, final: bool = False) -> Requeued:
    """Record a failed attempt: final for the model's fault, requeued for infrastructure's.

    An infrastructure failure goes back to ``queued`` while ``attempts < max_attempts`` (the
    caller enqueues it again), else fails for good; ``final`` fails it at once (a failure that
    another attempt would only repeat). Nothing changes when the lease was lost.
    """
    now = now or utcnow()
    message = clean_text(message)
    _finish_attempt(session, claim, outcome, message, log_text, timings or {}, now)
    held = (col(Job.id) == claim.job_id, col(Job.lease_token) == claim.lease_token,
            col(Job.status) == "running")
    if kind == "infra" and claim.attempt < claim.max_attempts and not final:
        note = (f"attempt {claim.attempt} of {claim.max_attempts} failed for an infrastructure "
                f"reason ({message}); queued again")
        values: dict[str, Any] = {"status": "queued", "message": note, "lease_token": None,
                                  "worker": None, "queued_at": now, "heartbeat_at": None}
    else:
        note = message if kind == "model" or final else (
            f"gave up after {claim.attempt} attempts; last failure (infrastructure): {message}")
        values = {"status": "failed", "failure_kind": kind, "message": note,
                  "finished_at": now, "lease_token": None}
    result = session.exec(update(Job).where(*held).values(**values)
                          .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        job = session.get(Job, claim.job_id)
        return Requeued(claim.job_id, job.status if job else "missing",
                        job.attempts if job else 0, "lease lost; left as it was")
    return Requeued(claim.job_id, str(values["status"]), claim.attempt, note)


def _release_lost(session: Session, job: Job, reason: str, now: datetime) -> Requeued | None:
    """Requeue (or fail) a running job whose worker is gone; None when it changed meanwhile."""
    if job.attempts < job.max_attempts:
        status = "queued"
        note = (f"attempt {job.attempts} of {job.max_attempts} was lost ({reason}); "
                "queued again")
        values: dict[str, Any] = {"status": status, "message": note, "lease_token": None,
                                  "worker": None, "queued_at": now, "heartbeat_at": None}
    else:
        status = "failed"
        note = (f"gave up after {job.attempts} attempts; last failure (infrastructure): "
                f"{reason}")
        values = {"status": status, "failure_kind": "infra", "message": note,
                  "finished_at": now, "lease_token": None}
    result = session.exec(
        update(Job)
        .where(col(Job.id) == job.id, col(Job.lease_token) == job.lease_token,
               col(Job.status) == "running")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    session.exec(
        update(JobAttempt)
        .where(col(JobAttempt.job_id) == job.id, col(JobAttempt.lease_token) == job.lease_token)
        .values(finished_at=now, outcome="worker_lost", message=reason)
        .execution_options(synchronize_session=False)
    )
    return Requeued(int(job.id or 0), status, job.attempts, note)


def requeue_stale(session: Session, *, lease_s: float, now: datetime | None = None
                  ) -> list[Requeued]:
    """Take back running jobs whose heartbeat is older than ``lease_s`` (their worker died)."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=lease_s)
    stale = session.exec(select(Job).where(Job.status == "running",
                                           col(Job.heartbeat_at) < cutoff)).all()
    done = []
    for job in stale:
        age_s = (now - job.heartbeat_at).total_seconds() if job.heartbeat_at else float("nan")
        moved = _release_lost(session, job, f"worker {job.worker} stopped reporting "
                              f"{age_s:.0f} s ago", now)
        if moved is not None:
            done.append(moved)
    return done


def requeue_worker_jobs(session: Session, worker: str, keep_tokens: Iterable[str] = (),
                        *, now: datetime | None = None) -> list[Requeued]:
    """Take back running jobs of ``worker`` that it no longer runs (it restarted).

    Worker names are unique among live workers, so a restarted worker knows that every job
    under its name, other than those in ``keep_tokens``, belonged to its dead predecessor.
    """
    now = now or utcnow()
    keep = set(keep_tokens)
    jobs = session.exec(select(Job).where(Job.status == "running", Job.worker == worker)).all()
    done = []
    for job in jobs:
        if job.lease_token in keep:
            continue
        moved = _release_lost(session, job, f"worker {worker} restarted while running it", now)
        if moved is not None:
            done.append(moved)
    return done


def fail_unclaimable(session: Session, job_id: int, reason: str, *,
                     now: datetime | None = None) -> bool:
    """Fail a queued job that cannot be claimed (the claim itself errs for good); True when it
    was queued and is now failed (infrastructure), so no worker tries it again and again."""
    result = session.exec(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status) == "queued")
        .values(status="failed", failure_kind="infra", finished_at=now or utcnow(),
                message=clean_text(f"the job could not be claimed: {reason}"), lease_token=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def cancel_jobs(session: Session, submission_id: int, *, now: datetime | None = None) -> int:
    """Cancel a submission's queued jobs (running ones finish); returns how many."""
    result = session.exec(
        update(Job)
        .where(col(Job.submission_id) == submission_id, col(Job.status) == "queued")
        .values(status="cancelled", finished_at=now or utcnow(), message="cancelled")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)


def queued_job_ids(session: Session, *, older_than: datetime | None = None) -> list[int]:
    """Ids of queued jobs, oldest first (optionally only those queued before ``older_than``)."""
    query = select(Job.id).where(Job.status == "queued")
    if older_than is not None:
        query = query.where(col(Job.queued_at) < older_than)
    return [int(i) for i in session.exec(query.order_by(col(Job.queued_at), col(Job.id)))
            if i is not None]
