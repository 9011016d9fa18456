"""Workers as the store knows them: each worker's own record (host, GPUs, heartbeat), its
running jobs and its throughput, for ``spared-bench workers`` and the admins' page.

A worker writes its record at start (``register_worker``), on every upkeep round
(``beat_worker``) and at a clean stop (``stop_worker``); the rest is read from ``jobs`` (what
it runs now) and ``job_attempts`` (what it finished).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from evaluator.store.models import Job, JobAttempt, Submission, WorkerRecord, utcnow

THROUGHPUT_WINDOW_S = 3600.0


class WorkerJob(BaseModel):
    """A job a worker runs now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: int
    submission_id: int
    dataset: str
    track: str
    gpus: str
    started_at: datetime | None


class WorkerView(BaseModel):
    """One worker: where it runs, what it runs now, how alive and how busy it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    host: str
    pid: int
    gpu_ids: str
    gpu_names: str
    slots: int
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_s: float
    stopped_at: datetime | None
    state: str  # "alive", "silent" (no heartbeat for longer than the lease) or "stopped"
    jobs: list[WorkerJob]
    jobs_last_hour: int


class WorkersReport(BaseModel):
    """Every recorded worker (``list_workers``), as the admins' API answers it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: list[WorkerView]
    lease_s: float  # a worker silent for longer than this is shown as "silent"
    generated_at: datetime = Field(default_factory=utcnow)


def register_worker(session: Session, name: str, *, host: str, pid: int, gpu_ids: str,
                    gpu_names: str, slots: int, now: datetime | None = None) -> None:
    """Create or refresh a worker's record at its start (a restart under a name replaces it)."""
    now = now or utcnow()
    row = session.get(WorkerRecord, name) or WorkerRecord(name=name)
    row.host, row.pid, row.gpu_ids, row.gpu_names, row.slots = host, pid, gpu_ids, gpu_names, slots
    row.started_at = row.heartbeat_at = now
    row.stopped_at = None
    session.add(row)


def beat_worker(session: Session, name: str, *, now: datetime | None = None) -> bool:
    """Record that a worker is alive; False when it has no record (it registers first)."""
    row = session.get(WorkerRecord, name)
    if row is None:
        return False
    row.heartbeat_at = now or utcnow()
    row.stopped_at = None
    session.add(row)
    return True


def stop_worker(session: Session, name: str, *, now: datetime | None = None) -> None:
    """Record a worker's clean stop."""
    row = session.get(WorkerRecord, name)
    if row is not None:
        row.stopped_at = now or utcnow()
        session.add(row)


def list_workers(session: Session, *, lease_s: float = 60.0, now: datetime | None = None,
                 window_s: float = THROUGHPUT_WINDOW_S) -> list[WorkerView]:
    """Every recorded worker, newest heartbeat first, with its running jobs and the attempts
    it finished in the last ``window_s`` (an hour by default)."""
    now = now or utcnow()
    since = now - timedelta(seconds=window_s)
    done = dict(session.exec(
        select(JobAttempt.worker, func.count())
        .where(col(JobAttempt.finished_at).is_not(None), col(JobAttempt.finished_at) >= since)
        .group_by(JobAttempt.worker)).all())
    running: dict[str, list[WorkerJob]] = {}
    for job in session.exec(select(Job).where(Job.status == "running")
                            .order_by(col(Job.started_at))).all():
        running.setdefault(job.worker or "", []).append(WorkerJob(
            job_id=job.id or 0, submission_id=job.submission_id, dataset=job.dataset,
            track=job.track, gpus=job.gpus, started_at=job.started_at))
    views = []
    rows = session.exec(select(WorkerRecord).order_by(col(WorkerRecord.heartbeat_at).desc(),
                                                      col(WorkerRecord.name))).all()
    for row in rows:
        age_s = max(0.0, (now - row.heartbeat_at).total_seconds())
        state = ("stopped" if row.stopped_at is not None
                 else "silent" if age_s > lease_s else "alive")
        views.append(WorkerView(
            name=row.name, host=row.host, pid=row.pid, gpu_ids=row.gpu_ids,
            gpu_names=row.gpu_names, slots=row.slots, started_at=row.started_at,
            heartbeat_at=row.heartbeat_at, heartbeat_age_s=round(age_s, 1),
            stopped_at=row.stopped_at, state=state,
            jobs=running.get(row.name, []),
            jobs_last_hour=int(done.get(row.name, 0))))
    return views


def held_datasets(session: Session, worker: str) -> set[tuple[str, str]]:
    """The (release id, dataset) pairs of the jobs ``worker`` is running now: what its token
    may read of a release's hidden files."""
    rows = session.exec(select(Job.release_id, Job.dataset).where(
        Job.worker == worker, Job.status == "running")).all()
    return {(str(release_id), str(dataset)) for release_id, dataset in rows}


def holds_image(session: Session, worker: str, image_prefix: str) -> bool:
    """Whether ``worker`` is running a job of a submission whose image reference starts with
    ``image_prefix`` (``HOST/REPOSITORY@``): the images its token may pull."""
    return session.exec(select(Job.id).join(Submission, col(Submission.id) == Job.submission_id)
                        .where(Job.worker == worker, Job.status == "running",
                               col(Submission.image_ref).startswith(image_prefix))
                        ).first() is not None
