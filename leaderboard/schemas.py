"""Response and request bodies of the JSON API (pydantic): what every endpoint answers, and the
source of the OpenAPI document's schemas. Floats are finite or null (JSON has no NaN).

The metric fields of a result (``ResultRowOut``, ``EntryDatasetOut``, ``DatasetScoreOut``) are
made from the metric specification (``evaluator.core.vocabulary``), and those models are
validated from the store's read model of a result (``evaluator.store.ResultView``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluator.core.vocabulary import METRICS, Track, with_metrics

MAX_ID = 2**63 - 1
"""The largest id a row can have (a signed 64-bit integer on every store)."""


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The leading fields of the three models of a result; the metric fields follow them.
class _ResultRowKey(_Out):
    entry: str
    submission_id: int
    team: str
    name: str
    is_baseline: bool
    dataset: str
    track: Track
    release_id: str


class _EntryDatasetKey(_Out):
    dataset: str
    track: Track


class _DatasetScoreKey(_Out):
    track: Track
    position: int
    entry: str
    submission_id: int
    is_baseline: bool


if TYPE_CHECKING:  # a type checker does not see the fields made at run time
    _ResultRowMetrics = _ResultRowKey
    _EntryDatasetMetrics = _EntryDatasetKey
    _DatasetScoreMetrics = _DatasetScoreKey
else:
    _ResultRowMetrics = with_metrics(_ResultRowKey)
    _EntryDatasetMetrics = with_metrics(_EntryDatasetKey)
    _DatasetScoreMetrics = with_metrics(_DatasetScoreKey, METRICS, intervals=False)


class ErrorOut(_Out):
    """Every 4xx/5xx answer of the API."""

    error: str
    status: int


class ReleaseOut(_Out):
    """A published dataset release."""

    release_id: str
    label: str | None
    is_current: bool
    published_at: datetime
    created_at: datetime
    datasets: list[str]
    tracks: list[str]


class ReleasesOut(_Out):
    """Every published release, newest first."""

    releases: list[ReleaseOut]


class FilterOut(_Out):
    """The dataset filter a view was computed on (null = any)."""

    organism: Literal["human", "mouse"] | None = None
    tissue: str | None = None
    generalization: Literal["intra-patient", "inter-patient"] | None = None
    genes: Literal[128, 32] | None = None


class RankedEntryOut(_Out):
    """One ranked (complete) entry of a leaderboard."""

    rank: int
    group: int | None = Field(description="significance group; 1 = not significantly worse "
                                          "than the leader (Dunn, Bonferroni)")
    entry: str
    submission_id: int
    team: str
    name: str
    is_baseline: bool
    mean_normalized_mse: float | None
    std_normalized_mse: float | None
    mean_mse: float | None
    mean_pcc_gene: float | None
    datasets_won: int
    parameter_count: int | None
    submitted_at: datetime
    mean_normalized_mse_low: float | None = Field(
        default=None, description="95 % dataset-bootstrap percentile interval, lower end")
    mean_normalized_mse_high: float | None = None
    rank_low: int | None = Field(default=None, description="95 % dataset-bootstrap rank "
                                                           "interval: best plausible rank")
    rank_high: int | None = None
    skill: float | None = Field(default=None, description="mean over datasets of 1 - MSE / MSE "
                                                          "of the mean baseline")
    skill_low: float | None = None
    skill_high: float | None = None
    reproducible: bool | None = Field(default=None, description="re-runs gave byte-identical "
                                                                "predictions (null: not re-run)")
    runs: int = Field(default=1, description="runs with results on this release")
    rerun_mse_spread: float | None = Field(default=None, description="largest max - min of MSE "
                                                                     "between runs of a job")
    rerun_pcc_gene_spread: float | None = None
    version: int = Field(default=1, description="the entry's version shown on this release")


class BootstrapOut(_Out):
    """How the ranking's intervals were resampled (enough to reproduce them)."""

    unit: Literal["datasets"]
    n_resamples: int
    seed: int
    confidence: float


class PairTestOut(_Out):
    """Wilcoxon signed-rank test of a pair on per-dataset MSE, Holm-adjusted, with effect sizes
    (differences a - b: negative favours a, the better-ranked)."""

    a: str
    b: str
    n: int
    statistic: float | None
    p_value: float | None
    p_holm: float | None
    significant: bool
    method: str
    median_difference: float | None = Field(description="median paired difference of "
                                                        "normalized MSE")
    rank_biserial: float | None = Field(description="matched-pairs rank-biserial correlation")


class IncompleteEntryOut(_Out):
    """An entry without a result on every dataset of the view: listed, not ranked."""

    entry: str
    submission_id: int
    team: str
    name: str
    is_baseline: bool
    n_datasets: int
    reason: str
    submitted_at: datetime
    version: int = 1


class KruskalOut(_Out):
    """Kruskal–Wallis H test on per-dataset MSE grouped by entry."""

    statistic: float | None
    p_value: float | None
    significant: bool


class LeaderboardOut(_Out):
    """A ranked leaderboard of one release, track and dataset filter."""

    release: ReleaseOut
    track: Track
    filter: FilterOut
    datasets: list[str]
    alpha: float
    entries: list[RankedEntryOut]
    incomplete: list[IncompleteEntryOut]
    test_status: Literal["tested", "not_enough"]
    test_reason: str | None
    kruskal: KruskalOut | None
    winners: dict[str, list[str]] = Field(description="dataset -> entries with its lowest MSE")
    normalized_mse: dict[str, dict[str, float | None]] = Field(
        description="entry -> dataset -> MSE / best MSE on the dataset (complete entries)")
    bootstrap: BootstrapOut | None = None
    skill_reference: str | None = Field(default=None, description="the mean baseline skill "
                                                                  "is measured against")
    skill_reason: str | None = None


class PValueMatrixOut(_Out):
    """A symmetric matrix of adjusted p-values; labels in rank order."""

    method: str
    labels: list[str]
    p_values: list[list[float | None]]


class FriedmanOut(_Out):
    """Friedman test (blocks = datasets), Nemenyi post-hoc, critical difference."""

    statistic: float | None
    p_value: float | None
    significant: bool
    n_datasets: int
    average_ranks: dict[str, float | None]
    q_alpha: float | None
    critical_difference: float | None
    nemenyi: PValueMatrixOut


class SignificanceOut(_Out):
    """The significance tests of a leaderboard (paper Table 3)."""

    release: ReleaseOut
    track: Track
    filter: FilterOut
    datasets: list[str]
    alpha: float
    test_status: Literal["tested", "not_enough"]
    test_reason: str | None
    kruskal: KruskalOut | None
    dunn: PValueMatrixOut | None
    groups: dict[str, int]
    friedman: FriedmanOut | None
    friedman_reason: str | None
    wilcoxon: list[PairTestOut] | None = None
    wilcoxon_holm: PValueMatrixOut | None = Field(
        default=None, description="the Wilcoxon pairs' Holm-adjusted p-values as a matrix")


class EntryDatasetOut(_EntryDatasetMetrics):
    """One entry's result on one dataset and track (every metric), with its position there."""

    normalized_mse: float | None = Field(description="MSE / lowest MSE on the dataset")
    position: int = Field(description="1 + entries with a lower MSE on the dataset")
    of: int = Field(description="entries with a result on the dataset")
    n_spots: int
    n_genes: int
    scorer_version: str
    scored_at: datetime


class TrackStandingOut(_Out):
    """An entry's overall standing in one track of the release (all datasets)."""

    track: Track
    complete: bool
    rank: int | None
    of: int
    group: int | None
    mean_normalized_mse: float | None
    mean_pcc_gene: float | None
    incomplete_reason: str | None


class ModelCardOut(_Out):
    """What the submission wrote to /output/model.json (null when it wrote none)."""

    name: str | None = None
    parameters: dict[str, object] = Field(default_factory=dict)
    notes: str | None = None


class EntryVersionOut(_Out):
    """One version of an entry, as the entry's page lists them."""

    submission_id: int
    version: int
    submitted_at: datetime
    url: str = Field(description="its entry page (its JSON: /api/entries/{submission_id})")
    state: Literal["shown", "superseded", "pending", "withdrawn", "hidden"] = Field(
        description="on this release: shown (the version ranked), superseded (an older one), "
                    "pending (newer than the shown one, no result yet), withdrawn, hidden")


class EntryOut(_Out):
    """An entry's page: who, what image, per-dataset results in both tracks, standings."""

    submission_id: int
    entry: str
    team: str
    name: str
    description: str
    is_baseline: bool
    submitted_at: datetime
    image_digest: str
    image_ref: str
    platform: str
    image_size_bytes: int
    release: ReleaseOut
    parameter_count: int | None
    model_card: ModelCardOut | None
    standings: list[TrackStandingOut]
    results: list[EntryDatasetOut]
    spackle_effect: dict[str, dict[str, float | None]] = Field(
        description="dataset -> {raw, spackle, delta}: PCC-Gene in each track (paper Fig. 6)")
    reruns: list[JobRunsOut] = Field(default_factory=list, description="jobs run more than "
                                                                       "once on this release")
    version: int = 1
    versions: list[EntryVersionOut] = Field(
        default_factory=list, description="the entry's versions (withdrawn and hidden ones only "
                                          "for its team and admins), oldest first")
    superseded_by: int | None = Field(
        default=None, description="submission id of the version shown on this release, when "
                                  "it is a newer one than this")
    superseded_by_version: int | None = None
    withdrawn: bool = False
    hidden: bool = False
    paper_url: str | None = None
    code_url: str | None = None


class JobRunsOut(_Out):
    """One job's runs on a release: identical predictions, or the range of its metrics."""

    dataset: str
    track: Track
    runs: int
    identical: bool
    mse_min: float | None
    mse_max: float | None
    pcc_gene_min: float | None
    pcc_gene_max: float | None


class DatasetFactsOut(_Out):
    """Registry facts of a dataset (paper Table 1)."""

    name: str
    abbreviation: str
    organism: str
    tissue: str
    generalization: str
    genes: int
    slides: int
    patients: int
    spots: int
    missing_before_pct: float
    missing_after_pct: float
    hidden_split: str


class DatasetTrackSummaryOut(_Out):
    """The best entry and the difficulty of a dataset in one track."""

    track: Track
    n_entries: int
    best_entry: str | None = Field(description="lowest MSE")
    best_mse: float | None
    best_pcc_entry: str | None
    best_pcc_gene: float | None = Field(description="difficulty: the best PCC-Gene reached")


class DatasetSummaryOut(_Out):
    """A dataset in the index: facts, and per track its best entry and best PCC."""

    facts: DatasetFactsOut
    in_release: bool
    tracks: list[DatasetTrackSummaryOut]


class DatasetsOut(_Out):
    """The datasets of a release, with their difficulty."""

    release: ReleaseOut
    datasets: list[DatasetSummaryOut]


class DatasetScoreOut(_DatasetScoreMetrics):
    """One entry's score on a dataset (SpaRED's metrics)."""

    normalized_mse: float | None


class DatasetOut(_Out):
    """A dataset's page: facts, best entry and difficulty per track, every entry's scores."""

    release: ReleaseOut
    facts: DatasetFactsOut
    in_release: bool
    tracks: list[DatasetTrackSummaryOut]
    scores: list[DatasetScoreOut]


class ResultRowOut(_ResultRowMetrics):
    """One row of the long results table (entry x dataset) of a release and track."""

    n_spots: int
    n_genes: int
    n_measured: int
    scorer_version: str
    scored_at: datetime
    image_digest: str


class ResultsOut(_Out):
    """Every result of a release and track (visible entries)."""

    release: ReleaseOut
    track: Track
    rows: list[ResultRowOut]


class WithdrawIn(_Out):
    """Body of ``POST /api/withdrawals``: an entry of the token's team (every version, or one);
    ``withdrawn: false`` puts it back (admins only)."""

    entry: str = Field(min_length=1, max_length=210, description="TEAM/NAME or a submission id")
    version: int | None = Field(default=None, ge=1, le=MAX_ID)
    withdrawn: bool = True


class HideIn(_Out):
    """Body of ``POST /api/admin/entries/{id}/hide``."""

    hidden: bool = True


class HideOut(_Out):
    """What hiding did."""

    submission_id: int
    entry: str
    hidden: bool


class ReevaluateIn(_Out):
    """Body of ``POST /api/admin/reevaluate``: exactly one of submission, all, baselines."""

    release: str = Field(default="current", max_length=100)
    submission: int | None = Field(default=None, ge=1, le=MAX_ID)
    all: bool = False
    baselines: bool = False
    retry_failed: bool = True


class RerunIn(_Out):
    """Body of ``POST /api/admin/rerun``: re-run one entry's jobs on a release."""

    submission: int = Field(ge=1, le=MAX_ID)
    release: str = Field(default="current", max_length=100)


class PublishIn(_Out):
    """Body of ``POST /api/admin/releases``: a built release (id, unique prefix or label)."""

    release: str = Field(min_length=1, max_length=100)
    queue_baselines: bool = True


class HealthOut(_Out):
    """``GET /healthz``."""

    status: Literal["ok"]
    current_release: str | None


class WorkerMeOut(BaseModel):
    """The worker a worker token belongs to."""

    model_config = ConfigDict(extra="forbid")

    name: str
