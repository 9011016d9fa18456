"""Re-runs: a run number beside the ranked run 0, block statistics stored with each result,
and the comparison of runs (identical predictions -> reproducible; else the metrics' spread)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlmodel import select

from evaluator.scoring import BlockStats, weighted_metrics
from evaluator.store import (
    Job,
    Result,
    claim_job,
    complete_job,
    create_jobs,
    reproducibility,
    results_rows,
    session_scope,
)
from tests.store.factories import TRACKS, add_release, add_submission, make_score

ENTRIES = [(d, t) for d, tracks in TRACKS.items() for t in tracks]


def _run(engine, submission_id: int, run: int, noise: float) -> list[int]:
    with session_scope(engine) as session:
        ids = create_jobs(session, submission_id, "a" * 64, ENTRIES, max_attempts=1,
                          run=run).to_enqueue
    for job_id, (dataset, track) in zip(ids, ENTRIES, strict=True):
        with session_scope(engine) as session:
            claim = claim_job(session, job_id, "w")
            assert claim is not None and claim.run == run
            # The seed depends on the job's entry, not on the run: same noise, same predictions.
            assert complete_job(session, claim, make_score(dataset, track, noise=noise,
                                                           seed=len(dataset) + len(track)))
    return ids


def test_reruns_are_stored_apart_and_compared(engine) -> None:
    add_release(engine)
    same = add_submission(engine, name="deterministic")
    drift = add_submission(engine, name="drifting")
    once = add_submission(engine, name="once")
    _run(engine, same.id, 0, noise=0.1)
    _run(engine, same.id, 1, noise=0.1)
    _run(engine, drift.id, 0, noise=0.1)
    _run(engine, drift.id, 1, noise=0.3)
    _run(engine, once.id, 0, noise=0.2)
    with session_scope(engine) as session:
        runs = reproducibility(session, "a" * 64)
        rows = results_rows(session, "a" * 64, "raw")
        stored = session.exec(select(Result).where(Result.submission_id == drift.id)).all()
        jobs = session.exec(select(Job).where(Job.submission_id == same.id)).all()
    # Only run 0 is ranked.
    assert len(rows) == 3 * 2 and len(stored) == 2 * len(ENTRIES)
    assert sorted(j.run for j in jobs) == [0] * len(ENTRIES) + [1] * len(ENTRIES)
    assert set(runs) == {same.id, drift.id}
    assert runs[same.id].reproducible and runs[same.id].identical == len(ENTRIES)
    assert runs[same.id].max_mse_spread == 0.0 and runs[same.id].runs == 2
    assert not runs[drift.id].reproducible and runs[drift.id].identical == 0
    by_run = {}
    for result in stored:
        by_run.setdefault((result.dataset, result.track), {})[result.run] = result.mse
    expected = max(abs(v[1] - v[0]) for v in by_run.values())
    assert runs[drift.id].max_mse_spread == pytest.approx(expected)


def test_results_keep_block_statistics_and_intervals(engine) -> None:
    add_release(engine)
    entry = add_submission(engine)
    _run(engine, entry.id, 0, noise=0.2)
    with session_scope(engine) as session:
        results = session.exec(select(Result)).all()
    for result in results:
        assert result.mse_low < result.mse < result.mse_high
        assert result.predictions_sha256 and len(result.predictions_sha256) == 64
        stats = BlockStats.from_bytes(result.block_stats)
        mse, pcc = weighted_metrics(stats, np.ones(stats.n_blocks))
        assert mse[0] == pytest.approx(result.mse, rel=1e-9)
        assert pcc[0] == pytest.approx(result.pcc_gene, rel=1e-9)


def test_upgrading_keeps_results_as_run_zero(db_url: str) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import text

    from evaluator.store import downgrade, get_engine, head_revision, upgrade

    engine = get_engine(db_url)
    assert upgrade(engine, "0001") == "0001"
    now = datetime(2025, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO teams (id, name, is_admin, created_at) VALUES (1, 't', false, :now)"),
            {"now": now})
        connection.execute(text(
            "INSERT INTO releases (release_id, created_at, published_at, is_current, tracks) "
            "VALUES ('r', :now, :now, true, '{}')"), {"now": now})
        connection.execute(text(
            "INSERT INTO submissions (id, team_id, name, description, image_ref, image_digest, "
            "image_size_bytes, platform, is_baseline, hidden, created_at) VALUES "
            "(1, 1, 'm', '', 'm:1', 'sha256:x', 0, 'linux/amd64', false, false, :now)"),
            {"now": now})
        connection.execute(text(
            "INSERT INTO jobs (id, submission_id, release_id, dataset, track, status, message, "
            "attempts, max_attempts, queued_at, gpus) VALUES "
            "(1, 1, 'r', 'd', 'raw', 'succeeded', '', 1, 3, :now, '')"), {"now": now})
        connection.execute(text(
            "INSERT INTO results (id, job_id, submission_id, release_id, dataset, track, mse, "
            "mae, pcc_gene, pcc_patch, n_spots, n_genes, n_measured, constant_genes, "
            "image_digest, scorer_version, scored_at, created_at, score) VALUES "
            "(1, 1, 1, 'r', 'd', 'raw', 0.5, 0.4, 0.3, 0.2, 10, 4, 30, 0, 'sha256:x', '1.0.0', "
            ":now, :now, '{}')"), {"now": now})
    assert upgrade(engine) == head_revision()
    with session_scope(engine) as session:
        result = session.exec(select(Result)).one()
        job = session.exec(select(Job)).one()
        rows = results_rows(session, "r", "raw")
    assert (result.run, job.run, result.mse_low, result.block_stats) == (0, 0, None, None)
    assert [r["mse"] for r in rows] == [0.5]
    assert downgrade(engine, "0001") == "0001"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT mse FROM results")).scalar_one() == 0.5
