"""Read helpers: releases, submissions and the per-release results table the statistics rank."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from sqlmodel import select

from evaluator.scoring import compute_statistics
from evaluator.store import (
    METRIC_COLUMNS,
    DatabaseUnavailable,
    NotFound,
    ReleaseRecord,
    Submission,
    claim_job,
    complete_job,
    current_release,
    get_release_record,
    get_submission,
    open_store,
    results_frame,
    results_rows,
    session_scope,
    status_counts,
    with_retry,
)
from tests.store.dbsupport import private_postgres
from tests.store.factories import (
    RELEASE_A,
    RELEASE_B,
    add_jobs,
    add_release,
    add_submission,
    make_score,
)


def _run_all(engine, submission_id: int, release_id: str, noise: float) -> None:
    for job_id in add_jobs(engine, submission_id, release_id):
        with session_scope(engine) as session:
            claim = claim_job(session, job_id, "w")
            assert claim is not None
            complete_job(session, claim, make_score(claim.dataset, claim.track, release_id,
                                                    noise=noise, seed=job_id))


def test_exactly_one_current_release_and_lookup_by_ref(engine) -> None:
    add_release(engine, RELEASE_A, label="one")
    add_release(engine, RELEASE_B, label="two")
    with session_scope(engine) as session:
        assert current_release(session).release_id == RELEASE_B
        assert session.exec(select(ReleaseRecord).where(ReleaseRecord.is_current)).all() \
            == [session.get(ReleaseRecord, RELEASE_B)]
        assert get_release_record(session, "one").release_id == RELEASE_A
        assert get_release_record(session, RELEASE_A[:8]).release_id == RELEASE_A
        assert get_release_record(session, "current").release_id == RELEASE_B
        with pytest.raises(NotFound, match="expected one of the published releases"):
            get_release_record(session, "three")
    add_release(engine, RELEASE_A, label="one")
    with session_scope(engine) as session:
        assert current_release(session).release_id == RELEASE_A


def test_get_submission_by_id_or_team_name(engine) -> None:
    made = add_submission(engine, team="t", name="ridge")
    with session_scope(engine) as session:
        assert get_submission(session, made.id).id == made.id
        assert get_submission(session, f"#{made.id}").id == made.id
        assert get_submission(session, "t/ridge").id == made.id
        with pytest.raises(NotFound, match="TEAM/NAME"):
            get_submission(session, "t/other")


def test_results_table_is_per_release_and_feeds_the_statistics(engine) -> None:
    add_release(engine, RELEASE_A)
    good = add_submission(engine, team="t", name="good", baseline=True)
    bad = add_submission(engine, team="t", name="bad")
    hidden = add_submission(engine, team="u", name="hidden")
    _run_all(engine, good.id, RELEASE_A, noise=0.05)
    _run_all(engine, bad.id, RELEASE_A, noise=1.0)
    _run_all(engine, hidden.id, RELEASE_A, noise=0.5)
    add_release(engine, RELEASE_B)
    _run_all(engine, good.id, RELEASE_B, noise=2.0)
    with session_scope(engine) as session:
        row = session.get(Submission, hidden.id)
        row.hidden = True
        session.add(row)
    with session_scope(engine) as session:
        rows = results_rows(session, RELEASE_A, "raw")
        frame = results_frame(session, RELEASE_A, "raw")
        with_hidden = results_rows(session, RELEASE_A, "raw", include_hidden=True)
        newer = results_frame(session, RELEASE_B, "raw")
        empty = results_frame(session, "c" * 64, "raw")
        counts = status_counts(session, good.id)
    assert {r["entry"] for r in rows} == {"t/good", "t/bad"}
    assert len(with_hidden) == 6 and len(rows) == 4
    assert set(METRIC_COLUMNS) <= set(frame.columns)
    assert (frame["release_id"] == RELEASE_A).all()
    assert list(newer["entry"]) == ["t/good", "t/good"]
    assert empty.empty and "mse" in empty.columns
    # Release B's far worse scores for t/good never leak into release A's table.
    assert frame[frame["entry"] == "t/good"]["mse"].max() < newer["mse"].min()
    report = compute_statistics(frame, track="raw", release_id=RELEASE_A)
    assert [e.entry for e in report.ranked()] == ["t/good", "t/bad"]
    assert counts == {"succeeded": 6}


def test_with_retry_waits_for_a_database_that_is_briefly_down() -> None:
    from evaluator.store import Team

    with private_postgres() as (url, cluster):
        engine = open_store(url)
        cluster.stop()

        def restart() -> None:
            time.sleep(2.0)
            cluster.start()

        thread = threading.Thread(target=restart)
        thread.start()
        start = time.monotonic()

        def add(session) -> int:
            team = Team(name="after-outage")
            session.add(team)
            session.flush()
            return int(team.id)

        team_id = with_retry(engine, add, wait_s=60, what="test")
        thread.join()
        assert time.monotonic() - start >= 1.5
        with session_scope(engine) as session:
            assert session.get(Team, team_id).name == "after-outage"

        cluster.stop()
        with pytest.raises(DatabaseUnavailable, match=r"expected the database .* to answer"):
            with_retry(engine, add, wait_s=1.0)


def test_store_imports_neither_docker_nor_torch() -> None:
    import subprocess

    code = ("import sys, evaluator.store; "
            "print(sorted(m for m in ('docker', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
