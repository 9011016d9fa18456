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
