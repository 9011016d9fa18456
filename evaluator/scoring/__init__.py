"""Scoring: masked metrics of a job, prediction validation, statistics and ranks over entries.

Importing this package is cheap: anndata, scipy, pandas and scikit-posthocs are imported
only by the functions that need them.
"""

from evaluator.scoring.cd_diagram import critical_difference_svg, report_cd_svg
from evaluator.scoring.errors import (
    MetricInputError,
    PredictionError,
    ResultsTableError,
    TruthError,
)
from evaluator.scoring.job import SCORER_VERSION, JobScore, Provenance, score_predictions
from evaluator.scoring.metrics import (
    MetricDetail,
    MetricSet,
    compute_metrics,
    compute_metrics_detailed,
)
from evaluator.scoring.predictions import load_predictions
from evaluator.scoring.stats import (
    DEFAULT_ALPHA,
    BootstrapInfo,
    EntryStats,
    FriedmanResult,
    KruskalResult,
    PValueMatrix,
    StatisticsReport,
    compute_statistics,
    critical_difference,
    dunn_bonferroni,
    nemenyi_friedman,
    significance_groups,
    studentized_range_sf_inf,
)
from evaluator.scoring.truth import SpotLayout, TruthSet, load_truth, truth_from_arrays
from evaluator.scoring.uncertainty import (
    BlockStats,
    JobInterval,
    PairTest,
    PairTests,
    block_stats,
    dataset_bootstrap,
    holm,
    job_interval,
    paired_tests,
    spatial_blocks,
    weighted_metrics,
    wilcoxon_pairs,
)

__all__ = [
    "DEFAULT_ALPHA",
    "SCORER_VERSION",
    "BlockStats",
    "BootstrapInfo",
    "EntryStats",
    "FriedmanResult",
    "JobInterval",
    "JobScore",
    "KruskalResult",
    "MetricDetail",
    "MetricInputError",
    "MetricSet",
    "PValueMatrix",
    "PairTest",
    "PairTests",
    "PredictionError",
    "Provenance",
    "ResultsTableError",
    "SpotLayout",
    "StatisticsReport",
    "TruthError",
    "TruthSet",
    "block_stats",
    "compute_metrics",
    "compute_metrics_detailed",
    "compute_statistics",
    "critical_difference",
    "critical_difference_svg",
    "dataset_bootstrap",
    "dunn_bonferroni",
    "holm",
    "job_interval",
    "load_predictions",
    "load_truth",
    "nemenyi_friedman",
    "paired_tests",
    "report_cd_svg",
    "score_predictions",
    "significance_groups",
    "spatial_blocks",
    "studentized_range_sf_inf",
    "truth_from_arrays",
    "weighted_metrics",
    "wilcoxon_pairs",
]
