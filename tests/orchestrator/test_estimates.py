"""Queue positions and ETAs from the store's own rows, on SQLite and on Postgres."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from evaluator.orchestrator.estimates import format_eta, queue_estimates, submissions_left_today
from evaluator.store import Job, JobAttempt, Submission, create_jobs, session_scope, utcnow
from evaluator.store.queries import current_release
from tests.orchestrator.conftest import BenchEnv


def _submission(session: Any, team_id: int, name: str, created_at: Any = None) -> Submission:
    submission = Submission(team_id=team_id, name=name, image_ref=name,
                            image_digest=f"sha256:{name:0>64}",
                            **({"created_at": created_at} if created_at else {}))
    session.add(submission)
    session.flush()
    return submission


def test_positions_and_eta_follow_the_queue_and_recent_durations(published: BenchEnv) -> None:
    from evaluator.orchestrator.auth import ensure_team

    bench = published.bench()
    now = utcnow()
    with session_scope(bench.engine) as session:
        team = ensure_team(session, "lab")
        release = current_release(session)
        assert release is not None
        first = _submission(session, team.id or 0, "first")
        second = _submission(session, team.id or 0, "second")
        entries = [("villacampa_lung_organoid", "raw"), ("villacampa_lung_organoid", "spackle")]
        early = create_jobs(session, first.id or 0, release.release_id, entries,
                            max_attempts=3, now=now - timedelta(minutes=5)).to_enqueue
        late = create_jobs(session, second.id or 0, release.release_id, entries,
                           max_attempts=3, now=now).to_enqueue
        ids = early + late
        # No finished attempt yet: positions but no ETA.
        assert {k: (v.position, v.eta_s) for k, v in queue_estimates(session, ids).items()} \
            == {ids[0]: (1, None), ids[1]: (2, None), ids[2]: (3, None), ids[3]: (4, None)}
        # History: a running job, two workers active within the hour, jobs of 10, 20, 30 s.
        done = session.get(Job, early[0])
        assert done is not None
        done.status = "running"
        for i, seconds in enumerate((10, 20, 30)):
            start = now - timedelta(minutes=10 - i)
            session.add(JobAttempt(job_id=early[0], attempt=i + 1, worker=f"w{i % 2}",
                                   lease_token=f"t{i}", started_at=start,
                                   finished_at=start + timedelta(seconds=seconds),
                                   outcome="succeeded"))
        session.flush()
        estimates = queue_estimates(session, late)
        # median 20 s, 1 running, 2 workers: position p is done in ((1 + p - 1) / 2 + 1) * 20 s.
        assert {k: (v.position, v.eta_s) for k, v in estimates.items()} == {
            late[0]: (2, 40.0), late[1]: (3, 50.0)}
        assert queue_estimates(session, [early[0]]) == {}  # running: no position
        assert format_eta(40.0) == "~40 s" and format_eta(600) == "~10 min"
        assert format_eta(None) == "unknown"


@pytest.mark.parametrize("limit", [None, 1])
def test_submissions_left_today(published: BenchEnv, limit: int | None) -> None:
    from evaluator.orchestrator.auth import ensure_team

    bench = published.bench()
    with session_scope(bench.engine) as session:
        team = ensure_team(session, "lab")
        team.daily_submission_limit = limit
        _submission(session, team.id or 0, "yesterday", utcnow() - timedelta(days=1, hours=1))
        _submission(session, team.id or 0, "today")
        assert submissions_left_today(session, team, 3) == (2 if limit is None else 0)
        admin = ensure_team(session, "admins", admin=True)
        assert submissions_left_today(session, admin, 3) is None
