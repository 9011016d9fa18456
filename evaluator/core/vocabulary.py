"""The domain's words, declared once: tracks and the metric specification.

Everything that names a track or a metric column takes it from here: the score's values
(``JobScore.metric_values``), the store's read model (``evaluator.store.ResultView``), job
reports' CSV columns, the API's response models and CSV columns, the OpenAPI document and the
pages' tables. Adding a metric is one ``Metric`` below, its computation (``source``, in
``evaluator.scoring``) and its store column with a migration (``tests/core/test_vocabulary.py``
checks the table against this list and derives every column set from an extended one). Adding
a track is its name in ``Track`` (and a label in ``TRACK_LABELS``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import BaseModel, BeforeValidator, Field, create_model

__all__ = [
    "INTERVAL_COLUMNS",
    "METRICS",
    "METRIC_NAMES",
    "RESULT_COLUMNS",
    "RESULT_METRICS",
    "TRACKS",
    "TRACK_LABELS",
    "Metric",
    "Track",
    "finite",
    "with_metrics",
]

# Training data of a submission (docs/ARCHITECTURE.md "Tracks"): SpaRED's measured values with
# missing ones as 0 (raw), or completed by SpaCKLE (spackle). Tested on the same hidden truth.
Track = Literal["raw", "spackle"]
TRACKS: tuple[Track, ...] = get_args(Track)
TRACK_LABELS: dict[str, str] = {"raw": "raw training data",
                                "spackle": "SpaCKLE-completed training data"}


@dataclass(frozen=True)
class Metric:
    """One metric: its column name, label, which way is better, and what it is.

    ``source``: where a ``JobScore`` holds it (default ``metrics.<name>``); ``integer``: a
    count; ``digits``: decimals shown on pages; ``interval``: a 95 % block-bootstrap interval
    is stored beside it (``<name>_low``, ``<name>_high``); ``track``: computed on that track
    only (None: every track).
    """

    name: str
    label: str
    better: Literal["lower", "higher"]
    definition: str
    source: str = ""
    integer: bool = False
    digits: int = 3
    interval: bool = False
    track: Track | None = None

    @property
    def path(self) -> tuple[str, ...]:
        """Attribute names from a ``JobScore`` to the value."""
        return tuple((self.source or f"metrics.{self.name}").split("."))

    @property
    def description(self) -> str:
        """One line for the API's schemas: label, direction, definition."""
        return f"{self.label} ({self.better} is better): {self.definition}"


# SpaRED's get_metrics set, in its order (evaluator/scoring/metrics.py has the exact formulas).
METRICS: tuple[Metric, ...] = (
    Metric("mse", "MSE", "lower", "mean of (truth - prediction)^2 over measured entries",
           digits=4, interval=True),
    Metric("mae", "MAE", "lower", "mean of |truth - prediction| over measured entries",
           digits=4),
    Metric("pcc_gene", "PCC-Gene", "higher",
           "mean over genes of Pearson's r between truth and prediction on measured spots",
           interval=True),
    Metric("pcc_patch", "PCC-Patch", "higher",
           "mean over spots of Pearson's r between truth and prediction on measured genes"),
    Metric("r2_gene", "R2-Gene", "higher",
           "mean over genes (>= 2 measured spots, varying truth) of 1 - SS_res / SS_tot"),
    Metric("r2_patch", "R2-Patch", "higher", "the same per spot over its measured genes"),
)
# What a stored result carries beyond them.
RESULT_METRICS: tuple[Metric, ...] = (
    *METRICS,
    Metric("constant_genes", "Const. genes", "lower",
           "genes whose prediction is constant on their measured spots (their PCC counts 0)",
           integer=True, digits=0),
    Metric("completed_mse", "MSE vs completed", "lower",
           "MSE against the SpaCKLE-completed truth on every entry (not ranked)",
           source="completed_metrics.mse", digits=4, track="spackle"),
    Metric("completed_pcc_gene", "PCC-Gene vs completed", "higher",
           "PCC-Gene against the SpaCKLE-completed truth on every entry (not ranked)",
           source="completed_metrics.pcc_gene", track="spackle"),
)
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)
RESULT_COLUMNS: tuple[str, ...] = tuple(m.name for m in RESULT_METRICS)
INTERVAL_COLUMNS: tuple[str, ...] = tuple(f"{m.name}_{end}" for m in RESULT_METRICS
                                          if m.interval for end in ("low", "high"))


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when missing or not finite (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


FiniteFloat = Annotated[float | None, BeforeValidator(finite)]
B = TypeVar("B", bound=BaseModel)


def with_metrics(base: type[B], metrics: Sequence[Metric] = RESULT_METRICS, *,
                 intervals: bool = True, name: str = "") -> type[B]:
    """``base`` followed by one nullable field per metric (floats finite or None), described by
    the specification, and with ``intervals`` each metric's interval columns: how a model of a
    result (the store's read model, the API's) carries every metric."""
    fields: dict[str, Any] = {}
    for m in metrics:
        fields[m.name] = (int | None if m.integer else FiniteFloat,
                          Field(description=m.description))
        if intervals and m.interval:
            for end in ("low", "high"):
                fields[f"{m.name}_{end}"] = (FiniteFloat, Field(
                    default=None, description=f"95 % spatial block-bootstrap interval of "
                                              f"{m.label}, {end} end"))
    return create_model(name or f"{base.__name__}Metrics", __base__=base,
                        __module__=base.__module__, **fields)
