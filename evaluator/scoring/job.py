"""Score one job: a predictions file (or array) against the hidden truth of a (dataset, track)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from evaluator.core.vocabulary import INTERVAL_COLUMNS, RESULT_METRICS, Track
from evaluator.scoring.errors import PredictionError
from evaluator.scoring.metrics import MetricSet, compute_metrics
from evaluator.scoring.predictions import load_predictions
from evaluator.scoring.truth import TruthSet
from evaluator.scoring.uncertainty import (
    BlockStats,
    JobInterval,
    block_stats,
    job_interval,
    spatial_blocks,
)

# Bump when a metric definition or its numerics change: scores of different versions differ.
# 1.1.0: per-block sufficient statistics and block-bootstrap intervals of MSE and PCC-Gene.
SCORER_VERSION = "1.1.0"


class Provenance(BaseModel):
    """Where a score comes from: release, dataset, track, scorer version and time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    release_id: str
    dataset: str
    track: Track
    scorer_version: str = SCORER_VERSION
    scored_at_utc: datetime = Field(default_factory=lambda: datetime.now(UTC))


class JobScore(BaseModel):
    """The result of scoring one job.

    ``metrics`` are on measured entries (the benchmark's score, both tracks). ``completed_metrics``
    (spackle track only) compare against the SpaCKLE-completed truth over every entry, labelled as
    such and never used for ranking.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provenance: Provenance
    n_spots: int
    n_genes: int
    n_measured: int
    metrics: MetricSet
    completed_metrics: MetricSet | None = None
    interval: JobInterval | None = None
    # SHA-256 of the predictions (float32, C order): re-runs with identical output match.
    predictions_sha256: str | None = None
    # Per-block sufficient statistics (``BlockStats.to_bytes``): stored in their own column,
    # kept out of the JSON form.
    block_stats: bytes | None = Field(default=None, exclude=True, repr=False)

    def metric_values(self) -> dict[str, float | int | None]:
        """Every metric of the specification (``RESULT_METRICS``) by name; None where not
        computed (the completed metrics off the spackle track)."""
        values: dict[str, float | int | None] = {}
        for metric in RESULT_METRICS:
            value: Any = self
            for name in metric.path:
                value = getattr(value, name) if value is not None else None
            values[metric.name] = value
        return values

    def as_row(self) -> dict[str, Any]:
        """Return a flat row for a results table: dataset, track, release, every metric (None
        where not computed) and, when computed, the interval columns."""
        intervals = INTERVAL_COLUMNS if self.interval is not None else ()
        return {"dataset": self.provenance.dataset, "track": self.provenance.track,
                "release_id": self.provenance.release_id, **self.metric_values(),
                **{column: getattr(self.interval, column) for column in intervals}}


def score_predictions(
    truth: TruthSet,
    predictions: Path | str | np.ndarray,
    *,
    release_id: str | None = None,
    max_bytes: int | None = None,
    intervals: bool = True,
) -> JobScore:
    """Validate predictions against the truth's shape and compute the job's metrics.

    With ``intervals``, also the per-block sufficient statistics of the measured entries
    (spatial tiles when the truth knows where its spots lie, else one block per spot) and the
    block-bootstrap 95 % intervals of MSE and PCC-Gene (``evaluator.scoring.uncertainty``).

    ``predictions`` is a path to ``predictions.npy`` (validated by ``load_predictions``) or an
    array (validated the same way: float32, shape, finite). ``release_id`` defaults to the
    truth's own, else ``"local"``. Raises ``PredictionError`` for unusable predictions.
    """
    if isinstance(predictions, np.ndarray):
        pred = _checked_array(predictions, truth.shape)
    else:
        pred = load_predictions(predictions, expected_shape=truth.shape, max_bytes=max_bytes)
    metrics = compute_metrics(truth.truth, pred, truth.mask)
    completed_metrics = None
    if truth.track == "spackle" and truth.completed is not None:
        everywhere = np.ones(truth.shape, dtype=bool)
        completed_metrics = compute_metrics(truth.completed, pred, everywhere)
    stats = _block_stats(truth, pred) if intervals else None
    return JobScore(
        predictions_sha256=hashlib.sha256(np.ascontiguousarray(pred).tobytes()).hexdigest(),
        interval=job_interval(stats) if stats is not None else None,
        block_stats=stats.to_bytes() if stats is not None else None,
        provenance=Provenance(
            release_id=release_id or truth.release_id or "local",
            dataset=truth.dataset,
            track=truth.track,
        ),
        n_spots=metrics.n_spots,
        n_genes=metrics.n_genes,
        n_measured=metrics.n_measured,
        metrics=metrics,
        completed_metrics=completed_metrics,
    )


def _block_stats(truth: TruthSet, pred: np.ndarray) -> BlockStats:
    """Per-block sufficient statistics of the job's measured entries (see ``score_predictions``)."""
    if truth.spots is not None:
        block, block_slide = spatial_blocks(truth.spots.slide_id, truth.spots.array_row,
                                            truth.spots.array_col)
        return block_stats(truth.truth, pred, truth.mask, block, block_slide)
    n_spots = truth.shape[0]
    return block_stats(truth.truth, pred, truth.mask, np.arange(n_spots),
                       np.zeros(n_spots, dtype=np.int64), scheme="spot", block_shape=(1, 1))


def _checked_array(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Apply the predictions contract to an in-memory array."""
    where = "<array>"
    if pred.dtype != np.float32:
        raise PredictionError(where, "dtype", "float32", str(pred.dtype))
    if pred.shape != shape:
        raise PredictionError(where, "shape", f"(n_test_spots, n_genes) = {shape}", str(pred.shape))
    finite = np.isfinite(pred)
    if not finite.all():
        first = tuple(int(x) for x in np.argwhere(~finite)[0])
        raise PredictionError(
            where, "values", "all values finite",
            f"{int((~finite).sum())} non-finite, first at (spot, gene) {first}",
        )
    return np.ascontiguousarray(pred)
