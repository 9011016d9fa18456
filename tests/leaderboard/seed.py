"""Seed a store with a leaderboard's worth of rows, through the store's own models and helpers:
releases (``upsert_release``), teams and hashed tokens (``create_team``, ``issue_token``),
submissions, jobs created, claimed and completed (``create_jobs``, ``claim_job``,
``complete_job`` with real ``JobScore``s of seeded predictions) or failed (``fail_job``).

Model cards: the worker does not store ``/output/model.json`` yet; the leaderboard reads it from
``results.score["model_card"]`` (``leaderboard.data.model_cards``), so the seed writes it there.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine
from sqlmodel import select

from evaluator.orchestrator import create_team, issue_token
from evaluator.scoring import JobScore, score_predictions, truth_from_arrays
from evaluator.store import (
    Result,
    Submission,
    claim_job,
    complete_job,
    create_jobs,
    fail_job,
    session_scope,
    upsert_release,
)

TINY_DATASETS = ("mirzazadeh_human_colon_p1", "mirzazadeh_human_prostate_cancer",
                 "villacampa_lung_organoid")
RELEASE = "c" * 64
OLD_RELEASE = "d" * 64


@dataclass(frozen=True)
class EntrySpec:
    """One submission to seed: its noise level sets its MSE (lower noise, better rank)."""

    team: str
    name: str
    noise: float
    baseline: bool = False
    parameters: int | None = None
    # (dataset, track) pairs left without a result: "failed" ones fail, the rest stay queued.
    failed: tuple[tuple[str, str], ...] = ()
    queued: tuple[tuple[str, str], ...] = ()


@dataclass
class Seeded:
    """What a seed put in the store: ids by ``team/name``, tokens by team."""

    release_id: str
    old_release_id: str | None
    datasets: tuple[str, ...]
    ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


DEFAULT_ENTRIES: tuple[EntrySpec, ...] = (
    EntrySpec("baselines", "mean", 1.0, baseline=True, parameters=None),
    EntrySpec("baselines", "ridge", 0.8, baseline=True, parameters=1_000),
    EntrySpec("team-a", "vit-delta", 0.5, parameters=86_000_000),
    EntrySpec("team-a", "stnet", 0.55, parameters=11_000_000),
    EntrySpec("team-b", "hist2st", 0.65, parameters=675_000_000),
    EntrySpec("team-b", "broken", 0.6, parameters=5_000,
              failed=(("villacampa_lung_organoid", "raw"),),
              queued=(("mirzazadeh_human_colon_p1", "spackle"),)),
)


def job_score(dataset: str, track: str, release_id: str, noise: float, seed: int,
              n_spots: int = 48, n_genes: int = 8) -> JobScore:
    """A real score of a prediction = truth + N(0, noise) on a truth seeded by the dataset."""
    truth_rng = np.random.default_rng(zlib.crc32(dataset.encode()))
    truth = truth_rng.normal(2.0, 1.0, size=(n_spots, n_genes)).astype(np.float32)
    mask = truth_rng.random((n_spots, n_genes)) > 0.25
    completed = truth.copy() if track == "spackle" else None
    truth_set = truth_from_arrays(truth, mask, dataset=dataset, track=track,  # type: ignore[arg-type]
                                  completed=completed, release_id=release_id)
    rng = np.random.default_rng(seed)
    # The spackle track trains on completed data: a little less noise (paper Fig. 6).
    scale = noise * (0.85 if track == "spackle" else 1.0)
    pred = (truth + rng.normal(0.0, scale, size=truth.shape)).astype(np.float32)
    return score_predictions(truth_set, pred, release_id=release_id)


def seed_store(engine: Engine, entries: tuple[EntrySpec, ...] = DEFAULT_ENTRIES, *,
               datasets: tuple[str, ...] = TINY_DATASETS, release_id: str = RELEASE,
               old_release_id: str | None = OLD_RELEASE, admin_team: str = "baselines",
               log_text: str = "epoch 1 loss 0.5\nTraceback: ValueError: shapes differ\n",
               ) -> Seeded:
    """Insert releases, teams with tokens, submissions and their jobs' results (see module).

    The old release (not current) holds results of the first two entries on one dataset.
    """
    tracks = {d: ["raw", "spackle"] for d in datasets}
    seeded = Seeded(release_id, old_release_id, datasets)
    base_time = datetime(2025, 3, 1, tzinfo=UTC)
    with session_scope(engine) as session:
        if old_release_id:
            upsert_release(session, old_release_id, label="old", created_at=base_time,
                           tracks={datasets[0]: ["raw"]}, make_current=True)
        upsert_release(session, release_id, label="tiny", created_at=base_time,
                       tracks=tracks, make_current=True)
        teams: dict[str, Any] = {}
        for spec in entries:
            if spec.team not in teams:
                teams[spec.team] = create_team(session, spec.team, admin=spec.team == admin_team)
                seeded.tokens[spec.team] = issue_token(session, spec.team, label="tests")
        for number, spec in enumerate(entries):
            submission = Submission(
                team_id=teams[spec.team].id, name=spec.name,
                description=f"{spec.name}: seeded entry with noise {spec.noise}",
                image_ref=f"{spec.team}/{spec.name}:1",
                image_digest="sha256:" + f"{number:02d}{spec.name}".encode().hex().ljust(64, "0")
                [:64], image_size_bytes=(number + 1) * 50 * 2**20, is_baseline=spec.baseline,
                created_at=base_time + timedelta(days=number))
            session.add(submission)
            session.flush()
            seeded.ids[f"{spec.team}/{spec.name}"] = int(submission.id or 0)
    for number, spec in enumerate(entries):
        submission_id = seeded.ids[f"{spec.team}/{spec.name}"]
        _evaluate(engine, submission_id, release_id, datasets, spec, number, log_text)
        if old_release_id and number < 2:
            _evaluate(engine, submission_id, old_release_id, datasets[:1],
                      EntrySpec(spec.team, spec.name, spec.noise * 1.1), number, log_text)
    return seeded


def _evaluate(engine: Engine, submission_id: int, release_id: str, datasets: tuple[str, ...],
              spec: EntrySpec, number: int, log_text: str) -> None:
    tracks = ("raw",) if release_id == OLD_RELEASE else ("raw", "spackle")
    entries = [(d, t) for d in datasets for t in tracks]
    card = {"name": spec.name, "notes": f"seeded {spec.name}",
            "parameters": {"noise": spec.noise,
                           **({"trainable_parameters": spec.parameters}
                              if spec.parameters else {})}}
    with session_scope(engine) as session:
        job_ids = create_jobs(session, submission_id, release_id, entries,
                              max_attempts=1).to_enqueue
        for job_id, (dataset, track) in zip(job_ids, entries, strict=True):
            if (dataset, track) in spec.queued:
                continue
            claim = claim_job(session, job_id, "seed-worker")
            if claim is None:
                raise RuntimeError(f"job {job_id} could not be claimed")
            if (dataset, track) in spec.failed:
                fail_job(session, claim, "model", "exit_nonzero: the model exited with status 1",
                         outcome="exit_nonzero", log_text=log_text)
                continue
            score = job_score(dataset, track, release_id, spec.noise,
                              seed=1000 * number + 10 * datasets.index(dataset) + len(track))
            complete_job(session, claim, score, message="ok", log_text="predicted\n",
                         timings={"model_s": 0.1})
            result = session.exec(select(Result).where(Result.job_id == job_id)).one()
            result.score = {**result.score, "model_card": card}
            session.add(result)
