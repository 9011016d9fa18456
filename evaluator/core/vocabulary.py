"""The domain's words, declared once: tracks and the metric specification.

Everything that names a track or a metric column (result rows, the store's queries, job
reports, CSV and response columns, pages) takes it from here, so adding a metric starts with
one entry below (then its computation in ``evaluator.scoring.metrics`` and its store column,
which ``tests/core/test_vocabulary.py`` checks against this list).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "METRICS",
    "METRIC_NAMES",
    "RESULT_COLUMNS",
    "RESULT_METRICS",
    "TRACKS",
    "Metric",
    "Track",
]

# Training data of a submission (docs/ARCHITECTURE.md "Tracks"): SpaRED's measured values with
# missing ones as 0 (raw), or completed by SpaCKLE (spackle). Tested on the same hidden truth.
Track = Literal["raw", "spackle"]
TRACKS: tuple[Track, ...] = ("raw", "spackle")


@dataclass(frozen=True)
class Metric:
    """One metric: its column name, label, which way is better, and what it is."""

    name: str
    label: str
    better: Literal["lower", "higher"]
    definition: str


# SpaRED's get_metrics set, in its order (evaluator/scoring/metrics.py has the exact formulas).
METRICS: tuple[Metric, ...] = (
    Metric("mse", "MSE", "lower", "mean of (truth - prediction)^2 over measured entries"),
    Metric("mae", "MAE", "lower", "mean of |truth - prediction| over measured entries"),
    Metric("pcc_gene", "PCC-Gene", "higher",
           "mean over genes of Pearson's r between truth and prediction on measured spots"),
    Metric("pcc_patch", "PCC-Patch", "higher",
           "mean over spots of Pearson's r between truth and prediction on measured genes"),
    Metric("r2_gene", "R2-Gene", "higher",
           "mean over genes (>= 2 measured spots, varying truth) of 1 - SS_res / SS_tot"),
    Metric("r2_patch", "R2-Patch", "higher", "the same per spot over its measured genes"),
)
# What a stored result carries beyond them.
RESULT_METRICS: tuple[Metric, ...] = (
    *METRICS,
    Metric("constant_genes", "constant genes", "lower",
           "genes whose prediction is constant on their measured spots (their PCC counts 0)"),
    Metric("completed_mse", "MSE (completed)", "lower",
           "MSE against the SpaCKLE-completed truth on every entry (spackle track)"),
    Metric("completed_pcc_gene", "PCC-Gene (completed)", "higher",
           "PCC-Gene against the SpaCKLE-completed truth on every entry (spackle track)"),
)
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
RESULT_COLUMNS: tuple[str, ...] = tuple(m.name for m in RESULT_METRICS)
