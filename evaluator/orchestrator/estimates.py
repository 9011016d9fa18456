"""Queue positions and ETAs of queued jobs, and a team's submissions left today.

How the ETA is estimated (said to authors as ``ETA_METHOD``): a queued job's position is one
plus the number of jobs queued before it (by queue time, then id) on the whole service; the
time a job takes is the median wall time of the last ``RECENT_ATTEMPTS`` finished attempts;
the workers are those that started an attempt within ``ACTIVE_WINDOW`` (at least one). A job
at position p waits for the running jobs and the p - 1 ahead of it to go through the workers,
then runs: ETA = ((running + p - 1) / workers + 1) x median duration. Without any finished
attempt there is no ETA. Retries, re-queued jobs and delayed messages make it an estimate.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, col, func, select

from evaluator.store import Job, JobAttempt, Team, utcnow
from evaluator.store.queries import submissions_submitted_since, today_start_utc

RECENT_ATTEMPTS = 50
ACTIVE_WINDOW = timedelta(hours=1)
ETA_METHOD = ("position: jobs queued before it on the service, plus one; ETA: (running jobs + "
              "jobs ahead) / active workers + 1, times the median wall time of the last "
              f"{RECENT_ATTEMPTS} finished jobs (an estimate)")

TRIES_NOTE = ("tries: attempt N of at most M; infrastructure failures (engine, worker, "
              "scoring) are retried up to M times, a model's own failure (exit_nonzero, "
              "timed_out, out_of_memory, output_missing, output_invalid, image_invalid) is "
              "final after one")


@dataclass(frozen=True)
class QueueEstimate:
    """Where a queued job stands: its position (1 = next) and seconds until it is expected done."""

    position: int
    eta_s: float | None


def queue_estimates(session: Session, job_ids: list[int]) -> dict[int, QueueEstimate]:
    """Position and ETA of each of ``job_ids`` that is queued (the others are left out)."""
    if not job_ids:
        return {}
    queued = session.exec(select(Job.id, Job.queued_at).where(col(Job.status) == "queued")
                          .order_by(col(Job.queued_at), col(Job.id))).all()
    wanted = set(job_ids)
    positions = {int(job_id): i for i, (job_id, _at) in enumerate(queued, start=1)
                 if job_id in wanted}
    if not positions:
        return {}
    running = session.exec(select(func.count()).select_from(Job)
                           .where(col(Job.status) == "running")).one()
    recent = session.exec(
        select(JobAttempt.started_at, JobAttempt.finished_at)
        .where(col(JobAttempt.finished_at).is_not(None))
        .order_by(col(JobAttempt.finished_at).desc()).limit(RECENT_ATTEMPTS)).all()
    durations = [(end - start).total_seconds() for start, end in recent if end is not None]
    since = utcnow() - ACTIVE_WINDOW
    workers = session.exec(select(func.count(func.distinct(JobAttempt.worker)))
                           .where(col(JobAttempt.started_at) >= since)).one()
    median_s = statistics.median(durations) if durations else None
    out = {}
    for job_id, position in positions.items():
        eta = None
        if median_s is not None:
            eta = ((int(running) + position - 1) / max(1, int(workers)) + 1) * median_s
        out[job_id] = QueueEstimate(position, eta)
    return out


def submissions_left_today(session: Session, team: Team, default_limit: int) -> int | None:
    """How many more submissions ``team`` may make today (UTC); None for admins (no limit)."""
    if team.is_admin:
        return None
    limit = (team.daily_submission_limit if team.daily_submission_limit is not None
             else default_limit)
    used = submissions_submitted_since(session, team.id or 0, today_start_utc())
    return max(0, limit - used)


def format_eta(eta_s: float | None) -> str:
    """``~3 min``, ``~2.5 h``; ``unknown`` when no job has finished yet."""
    if eta_s is None:
        return "unknown"
    if eta_s < 90:
        return f"~{eta_s:.0f} s"
    if eta_s < 5400:
        return f"~{eta_s / 60:.0f} min"
    return f"~{eta_s / 3600:.1f} h"
