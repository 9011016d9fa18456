"""Small builders of store rows and scores for tests."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from sqlalchemy.engine import Engine

from evaluator.scoring import JobScore, score_predictions, truth_from_arrays
from evaluator.store import (
    ReleaseRecord,
    Submission,
    Team,
    create_jobs,
    session_scope,
    upsert_release,
)

RELEASE_A = "a" * 64
RELEASE_B = "b" * 64
TRACKS = {"villacampa_lung_organoid": ["raw", "spackle"], "mirzazadeh_human_colon_p1": ["raw"]}


def add_release(engine: Engine, release_id: str = RELEASE_A, *, label: str = "one",
                current: bool = True) -> ReleaseRecord:
    """Publish a release row with ``TRACKS``."""
    with session_scope(engine) as session:
        return upsert_release(session, release_id, label=label,
                              created_at=datetime(2025, 1, 1, tzinfo=UTC), tracks=TRACKS,
                              make_current=current)


def add_submission(engine: Engine, *, team: str = "team-a", name: str = "model",
                   digest: str | None = None, baseline: bool = False) -> Submission:
    """A team (created when missing) and one of its submissions."""
    from sqlmodel import select

    with session_scope(engine) as session:
        row = session.exec(select(Team).where(Team.name == team)).first()
        if row is None:
            row = Team(name=team)
            session.add(row)
            session.flush()
        submission = Submission(team_id=row.id or 0, name=name, image_ref=f"{name}:latest",
                                image_digest=digest or f"sha256:{name:0>64}"[:71],
                                is_baseline=baseline)
        session.add(submission)
        session.flush()
        return submission


def add_jobs(engine: Engine, submission_id: int, release_id: str = RELEASE_A,
             max_attempts: int = 3) -> list[int]:
    """Queue every (dataset, track) of ``TRACKS``; returns the job ids."""
    entries = [(d, t) for d, tracks in TRACKS.items() for t in tracks]
    with session_scope(engine) as session:
        return create_jobs(session, submission_id, release_id, entries,
                           max_attempts=max_attempts).to_enqueue


def make_score(dataset: str, track: str, release_id: str = RELEASE_A, *, noise: float = 0.1,
               seed: int = 0) -> JobScore:
    """A real score of a noisy prediction of a seeded truth."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(2.0, 1.0, size=(40, 6)).astype(np.float32)
    mask = rng.random((40, 6)) > 0.2
    completed = truth.copy() if track == "spackle" else None
    truth_set = truth_from_arrays(truth, mask, dataset=dataset, track=track,  # type: ignore[arg-type]
                                  completed=completed, release_id=release_id)
    pred = (truth + rng.normal(0.0, noise, size=truth.shape)).astype(np.float32)
    return score_predictions(truth_set, pred, release_id=release_id)
