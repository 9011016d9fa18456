"""The metric specification and the tracks: every place that lists them agrees with them."""

from __future__ import annotations

import numpy as np

from evaluator.core.vocabulary import METRIC_NAMES, RESULT_COLUMNS, RESULT_METRICS, TRACKS


def test_metric_names_are_unique_and_spareds_set_comes_first() -> None:
    assert len(set(RESULT_COLUMNS)) == len(RESULT_COLUMNS)
    assert METRIC_NAMES == ("mse", "mae", "pcc_gene", "pcc_patch", "r2_gene", "r2_patch")
    assert RESULT_COLUMNS[:len(METRIC_NAMES)] == METRIC_NAMES
    assert all(m.better in ("lower", "higher") and m.label and m.definition
               for m in RESULT_METRICS)
    assert TRACKS == ("raw", "spackle")


def test_every_metric_column_is_computed_stored_reported_and_served() -> None:
    from evaluator.jobs.report import CSV_COLUMNS
    from evaluator.scoring import compute_metrics
    from evaluator.scoring.metrics import MetricSet
    from evaluator.store import METRIC_COLUMNS
    from evaluator.store.models import Result
    from leaderboard import data
    from leaderboard.views.api import ENTRY_COLUMNS

    assert set(METRIC_NAMES) <= set(MetricSet.model_fields)
    assert set(RESULT_COLUMNS) <= set(Result.model_fields)
    assert METRIC_COLUMNS == RESULT_COLUMNS
    assert data.METRICS == RESULT_COLUMNS
    assert set(RESULT_COLUMNS) <= set(CSV_COLUMNS)
    assert set(RESULT_COLUMNS) <= set(ENTRY_COLUMNS)
    rng = np.random.default_rng(0)
    truth = rng.random((6, 3)).astype(np.float32)
    metrics = compute_metrics(truth, truth + 0.1, np.ones(truth.shape, dtype=bool))
    assert all(isinstance(getattr(metrics, name), float) for name in METRIC_NAMES)


def test_every_track_literal_is_the_vocabularys() -> None:
    from typing import get_args

    from evaluator.contract.models import TaskSpec as Task
    from evaluator.scoring.job import Provenance
    from leaderboard.filters import TRACKS as BOARD_TRACKS

    assert get_args(Task.model_fields["track"].annotation) == TRACKS
    assert get_args(Provenance.model_fields["track"].annotation) == TRACKS
    assert BOARD_TRACKS == TRACKS
