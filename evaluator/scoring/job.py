"""Score one job: a predictions file (or array) against the hidden truth of a (dataset, track)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from evaluator.scoring._kernels import Engine
from evaluator.scoring.errors import PredictionError
from evaluator.scoring.metrics import MetricSet, compute_metrics
from evaluator.scoring.predictions import load_predictions
from evaluator.scoring.truth import TruthSet

# Bump when a metric definition or its numerics change: scores of different versions differ.
SCORER_VERSION = "1.0.0"


class Provenance(BaseModel):
    """Where a score comes from: release, dataset, track, scorer version and time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    release_id: str
    dataset: str
    track: Literal["raw", "spackle"]
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

    def as_row(self) -> dict[str, Any]:
        """Return a flat row for a results table (dataset, track, metric columns)."""
        row: dict[str, Any] = {
            "dataset": self.provenance.dataset,
            "track": self.provenance.track,
            "release_id": self.provenance.release_id,
            "mse": self.metrics.mse,
            "mae": self.metrics.mae,
            "pcc_gene": self.metrics.pcc_gene,
            "pcc_patch": self.metrics.pcc_patch,
            "r2_gene": self.metrics.r2_gene,
            "r2_patch": self.metrics.r2_patch,
            "constant_genes": self.metrics.constant_genes,
        }
        if self.completed_metrics is not None:
            row["completed_mse"] = self.completed_metrics.mse
            row["completed_pcc_gene"] = self.completed_metrics.pcc_gene
        return row


def score_predictions(
    truth: TruthSet,
    predictions: Path | str | np.ndarray,
    *,
    release_id: str | None = None,
    max_bytes: int | None = None,
    engine: Engine = "auto",
) -> JobScore:
    """Validate predictions against the truth's shape and compute the job's metrics.

    ``predictions`` is a path to ``predictions.npy`` (validated by ``load_predictions``) or an
    array (validated the same way: float32, shape, finite). ``release_id`` defaults to the
    truth's own, else ``"local"``. Raises ``PredictionError`` for unusable predictions.
    """
    if isinstance(predictions, np.ndarray):
        pred = _checked_array(predictions, truth.shape)
    else:
        pred = load_predictions(predictions, expected_shape=truth.shape, max_bytes=max_bytes)
    metrics = compute_metrics(truth.truth, pred, truth.mask, engine=engine)
    completed_metrics = None
    if truth.track == "spackle" and truth.completed is not None:
        everywhere = np.ones(truth.shape, dtype=bool)
        completed_metrics = compute_metrics(truth.completed, pred, everywhere, engine=engine)
    return JobScore(
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
