"""Each scored job's hidden-split predictions, kept for its owners to download.

A worker keeps the validated ``predictions.npy`` of every job it scores as a canonical
``.npy`` (float32, C order) under ``$SPARED_BENCH_HOME/predictions/<sha[:2]>/<sha>.npy``,
where ``sha`` is the SHA-256 of the array's bytes: the ``predictions_sha256`` its result row
records (so no store column is needed, and identical predictions are kept once). Files over
``MAX_KEPT_PREDICTIONS_BYTES`` are not kept. Only the owning team and admins may list or read
them (``list_predictions``, ``prediction_file``): they are scored against the hidden truth.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict
from sqlmodel import col, select

from evaluator.core.fsio import atomic_path
from evaluator.orchestrator.errors import AuthError
from evaluator.orchestrator.service import Bench
from evaluator.store import NotFound, Result, Submission, Team, session_scope
from evaluator.store.queries import get_submission

PREDICTIONS_DIR = "predictions"
MAX_KEPT_PREDICTIONS_BYTES = 512 * 2**20
"""Predictions larger than this (e.g. 128 genes x 1M spots) are scored but not kept."""
_SHA_CHARS = frozenset("0123456789abcdef")


class PredictionFile(BaseModel):
    """One job's kept predictions: which entry, release, dataset, track and run; its hash."""

    model_config = ConfigDict(extra="forbid")

    result_id: int
    submission_id: int
    release_id: str
    dataset: str
    track: str
    run: int
    sha256: str
    size_bytes: int | None
    kept: bool


def predictions_path(home: Path, sha256: str) -> Path:
    """Where predictions with this array hash are kept; ``ValueError`` for a non-hash."""
    if len(sha256) != 64 or not set(sha256) <= _SHA_CHARS:
        raise ValueError(f"predictions hash: expected 64 lowercase hex digits, found {sha256!r}")
    return home / PREDICTIONS_DIR / sha256[:2] / f"{sha256}.npy"


def keep_predictions(home: Path, source: Path, sha256: str) -> Path | None:
    """Keep the validated predictions at ``source`` under their hash; None when too large.

    The array is written again as a canonical ``.npy`` and its hash checked against the
    result's (a mismatch keeps nothing: ``ValueError``). Atomic; an existing file is kept.
    """
    target = predictions_path(home, sha256)
    if target.is_file():
        return target
    if source.stat().st_size > MAX_KEPT_PREDICTIONS_BYTES:
        return None
    array = np.ascontiguousarray(np.load(source, allow_pickle=False), dtype=np.float32)
    found = hashlib.sha256(array.tobytes()).hexdigest()
    if found != sha256:
        raise ValueError(f"{source}: expected predictions with hash {sha256[:12]}, found "
                         f"{found[:12]}")
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(0o444)
    return target


def _may_read(submission: Submission, by: Team | None) -> None:
    if by is None or by.is_admin or by.id == submission.team_id:
        return
    if submission.hidden:
        raise NotFound("submission", submission.id, "expected an id such as 12 or TEAM/NAME")
    raise AuthError(f"submission #{submission.id}: expected your own team's entry to download "
                    f"predictions, found team {by.name!r}'s token (predictions on the hidden "
                    "split go to their own team and admins only)")


def _file(home: Path, result: Result) -> PredictionFile:
    path = predictions_path(home, result.predictions_sha256) if result.predictions_sha256 \
        else None
    kept = path is not None and path.is_file()
    return PredictionFile(
        result_id=result.id or 0, submission_id=result.submission_id,
        release_id=result.release_id, dataset=result.dataset, track=result.track,
        run=result.run, sha256=result.predictions_sha256 or "",
        size_bytes=path.stat().st_size if kept and path is not None else None, kept=kept)


def list_predictions(bench: Bench, ref: str | int, *, by: Team | None = None
                     ) -> list[PredictionFile]:
    """Every result of a submission with its kept predictions; owners and admins only.

    Raises ``NotFound`` (also for another team's hidden entry) and ``AuthError`` (another
    team's public entry).
    """
    home = bench.settings.home
    with session_scope(bench.engine) as session:
        submission = get_submission(session, ref)
        _may_read(submission, by)
        results = session.exec(select(Result).where(Result.submission_id == submission.id)
                               .order_by(col(Result.release_id), col(Result.dataset),
                                         col(Result.track), col(Result.run))).all()
        return [_file(home, r) for r in results]


def prediction_file(bench: Bench, result_id: int, *, by: Team | None = None
                    ) -> tuple[PredictionFile, Path]:
    """One result's kept predictions file; ``NotFound`` when absent or not yours to read."""
    home = bench.settings.home
    with session_scope(bench.engine) as session:
        result = session.get(Result, result_id)
        if result is None:
            raise NotFound("predictions", result_id, "expected a result_id from the list")
        submission = session.get(Submission, result.submission_id)
        if submission is None:
            raise NotFound("predictions", result_id, "expected a result_id from the list")
        _may_read(submission, by)
        entry = _file(home, result)
    if not entry.kept:
        raise NotFound("predictions", result_id, "these predictions were not kept (scored "
                       "before predictions were kept, or too large)")
    return entry, predictions_path(home, entry.sha256)
