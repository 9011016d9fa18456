"""The metric specification and the tracks: every column set is derived from them, so a new
metric or track is added in one place (``evaluator/core/vocabulary.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import numpy as np

from evaluator.core.vocabulary import (
    INTERVAL_COLUMNS,
    METRIC_NAMES,
    RESULT_COLUMNS,
    RESULT_METRICS,
    TRACKS,
)

REPO = Path(__file__).resolve().parents[2]
# Columns of the results table that are not a metric or a metric's interval.
RESULT_TABLE_OTHERS = {"id", "job_id", "submission_id", "release_id", "dataset", "track", "run",
                       "n_spots", "n_genes", "n_measured", "block_stats", "predictions_sha256",
                       "image_digest", "scorer_version", "scored_at", "created_at", "score"}


def test_metric_names_are_unique_and_spareds_set_comes_first() -> None:
    assert len(set(RESULT_COLUMNS)) == len(RESULT_COLUMNS)
    assert METRIC_NAMES == ("mse", "mae", "pcc_gene", "pcc_patch", "r2_gene", "r2_patch")
    assert RESULT_COLUMNS[:len(METRIC_NAMES)] == METRIC_NAMES
    assert all(m.better in ("lower", "higher") and m.label and m.definition
               for m in RESULT_METRICS)
    assert INTERVAL_COLUMNS == ("mse_low", "mse_high", "pcc_gene_low", "pcc_gene_high")
    assert TRACKS == ("raw", "spackle")


def test_the_results_table_stores_exactly_the_specifications_metrics() -> None:
    from evaluator.store.models import Result

    assert set(Result.model_fields) - RESULT_TABLE_OTHERS == {*RESULT_COLUMNS, *INTERVAL_COLUMNS}
    for metric in RESULT_METRICS:
        column = Result.__table__.c[metric.name]  # type: ignore[attr-defined]
        assert column.type.python_type is (int if metric.integer else float), metric.name


def test_a_scores_values_are_read_as_the_specification_says() -> None:
    from evaluator.scoring import JobScore, compute_metrics
    from evaluator.scoring.job import Provenance

    rng = np.random.default_rng(0)
    truth = rng.random((6, 3)).astype(np.float32)
    mask = np.ones(truth.shape, dtype=bool)
    measured, completed = (compute_metrics(truth, truth + s, mask) for s in (0.1, 0.2))
    raw = JobScore(provenance=Provenance(release_id="r", dataset="d", track="raw"), n_spots=6,
                   n_genes=3, n_measured=18, metrics=measured)
    spackle = raw.model_copy(update={"completed_metrics": completed})
    assert tuple(raw.metric_values()) == RESULT_COLUMNS
    assert raw.metric_values() == {**{m: getattr(measured, m) for m in METRIC_NAMES},
                                   "constant_genes": measured.constant_genes,
                                   "completed_mse": None, "completed_pcc_gene": None}
    assert spackle.metric_values()["completed_mse"] == completed.mse
    assert spackle.metric_values()["completed_pcc_gene"] == completed.pcc_gene


# Run in a fresh interpreter where evaluator/core/vocabulary.py has one more metric and one
# more track (its text edited in those two places only), then read every derived column set.
_EXTENDED = r'''
import importlib.abc, importlib.util, json, sys
from pathlib import Path

path = Path(sys.argv[1])
source = path.read_text()
metric_line = '    Metric("r2_patch", "R2-Patch",'
track_line = 'Track = Literal["raw", "spackle"]'
assert source.count(metric_line) == 1 and source.count(track_line) == 1
source = source.replace(metric_line, '    Metric("spearman_gene", "Spearman-Gene", "higher", '
                        '"mean over genes of Spearman rho"),\n' + metric_line)
source = source.replace(track_line, 'Track = Literal["raw", "spackle", "imputed"]')


class Edited(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path_, target=None):
        if name == "evaluator.core.vocabulary":
            return importlib.util.spec_from_loader(name, self, origin=str(path))
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__file__ = str(path)
        exec(compile(source, str(path), "exec"), module.__dict__)


sys.meta_path.insert(0, Edited())

from flask import Flask

from evaluator.core import vocabulary
from evaluator.jobs.report import CSV_COLUMNS
from evaluator.store import ResultView
from leaderboard import schemas
from leaderboard.filters import parse_track
from leaderboard.openapi import openapi_document
from leaderboard.templating import register_filters
from leaderboard.views import api  # noqa: F401  (the module, not the blueprint)

api = sys.modules["leaderboard.views.api"]
document = openapi_document("/")
components = document["components"]["schemas"]
app = Flask("leaderboard")
register_filters(app)
page = [app.jinja_env.from_string('{% from "_metrics.html" import metric_headers %}' + text)
        .render() for text in ("{{ metric_headers(result_metrics) }}",
                               "{{ metric_headers(spared_metrics) }}", "{{ tracks|join(',') }}")]
leaderboard_get = document["paths"]["/api/leaderboard"]["get"]
print(json.dumps({
    "specification": [m.name for m in vocabulary.RESULT_METRICS],
    "tracks": list(vocabulary.TRACKS),
    "csv_report": list(CSV_COLUMNS),
    "read_model": list(ResultView.model_fields),
    "schemas": {name: list(getattr(schemas, name).model_fields)
                for name in ("ResultRowOut", "EntryDatasetOut", "DatasetScoreOut")},
    "api_csv": {"results": list(api.RESULT_COLUMNS), "entry": list(api.ENTRY_COLUMNS),
                "dataset": list(api.DATASET_COLUMNS)},
    "openapi": {name: list(components[name]["properties"])
                for name in ("ResultRowOut", "EntryDatasetOut", "DatasetScoreOut")},
    "openapi_description": components["ResultRowOut"]["properties"]["spearman_gene"]
                           ["description"],
    "openapi_tracks": {
        "parameter": next(p["schema"]["enum"] for p in leaderboard_get["parameters"]
                          if p["name"] == "track"),
        "LeaderboardOut": components["LeaderboardOut"]["properties"]["track"]["enum"],
        "ResultRowOut": components["ResultRowOut"]["properties"]["track"]["enum"]},
    "page": page,
    "parsed_track": parse_track("imputed"),
}))
'''


def test_a_new_metric_and_track_are_added_in_one_place() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _EXTENDED, str(REPO / "evaluator" / "core" / "vocabulary.py")],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr
    derived = json.loads(completed.stdout)
    new = "spearman_gene"
    assert derived["specification"].index(new) == derived["specification"].index("r2_patch") - 1
    assert derived["tracks"] == ["raw", "spackle", "imputed"]
    assert new in derived["csv_report"]
    assert new in derived["read_model"]
    for name in ("ResultRowOut", "EntryDatasetOut", "DatasetScoreOut"):
        assert new in derived["schemas"][name], name
        assert new in derived["openapi"][name], name
    assert derived["openapi_description"] == (
        "Spearman-Gene (higher is better): mean over genes of Spearman rho")
    assert all(new in columns for columns in derived["api_csv"].values())
    assert all("imputed" in enum for enum in derived["openapi_tracks"].values())
    entry_headers, dataset_headers, tracks = derived["page"]
    assert "Spearman-Gene ↑" in entry_headers and "Spearman-Gene ↑" in dataset_headers
    assert tracks == "raw,spackle,imputed"
    assert derived["parsed_track"] == "imputed"


def test_every_track_literal_is_the_vocabularys() -> None:
    from evaluator.contract.models import TaskSpec as Task
    from evaluator.scoring.job import Provenance
    from leaderboard.filters import TRACKS as BOARD_TRACKS
    from leaderboard.schemas import LeaderboardOut, ResultRowOut

    assert get_args(Task.model_fields["track"].annotation) == TRACKS
    assert get_args(Provenance.model_fields["track"].annotation) == TRACKS
    assert get_args(LeaderboardOut.model_fields["track"].annotation) == TRACKS
    assert get_args(ResultRowOut.model_fields["track"].annotation) == TRACKS
    assert BOARD_TRACKS == TRACKS
