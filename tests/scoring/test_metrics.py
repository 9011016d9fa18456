"""Masked metrics: hand-computed golden values, equality with the per-column reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluator.scoring import MetricInputError, compute_metrics, compute_metrics_detailed
from tests.scoring.reference import reference_metrics

METRICS = ("mse", "mae", "pcc_gene", "pcc_patch", "r2_gene", "r2_patch")


def _golden_masked() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4 spots x 3 genes: spot 3 unmeasured, gene 2 and spot 2 with a single measured value."""
    t = np.array([[1, 2, 5], [2, 4, 5], [3, 6, 5], [9, 9, 9]], dtype=np.float32)
    p = np.array([[1, 3, 0], [3, 4, 0], [2, 5, 0], [7, 7, 7]], dtype=np.float32)
    m = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=bool)
    return t, p, m


def test_golden_masked_rows_and_columns() -> None:
    t, p, m = _golden_masked()
    got = compute_metrics(t, p, m)
    # By hand: errors 0, -1, 5, -1, 0, 1 on the 6 measured entries.
    assert got.mse == pytest.approx(28 / 6, rel=1e-12)
    assert got.mae == pytest.approx(8 / 6, rel=1e-12)
    # Genes: r = 0.5, 1, 0 (single value); R2 = 0, 0.5 (gene 2 skipped).
    assert got.pcc_gene == pytest.approx(0.5, rel=1e-12)
    assert got.r2_gene == pytest.approx(0.25, rel=1e-12)
    # Spots: r = -11/sqrt(364), 1, 0 (single value), spot 3 skipped; R2 = -2, 0.5.
    assert got.pcc_patch == pytest.approx((-11 / math.sqrt(364) + 1) / 3, rel=1e-12)
    assert got.r2_patch == pytest.approx(-0.75, rel=1e-12)
    assert (got.n_spots, got.n_genes, got.n_measured) == (4, 3, 6)
    assert (got.single_value_genes, got.unmeasured_genes) == (1, 0)
    assert (got.single_value_spots, got.unmeasured_spots) == (1, 1)
    assert got.constant_genes == 0


def test_golden_constant_prediction_and_constant_truth() -> None:
    t = np.array([[1, 1, 5], [2, 3, 5], [3, 2, 5]], dtype=np.float32)
    p = np.array([[4, 1, 1], [4, 2, 2], [4, 3, 3]], dtype=np.float32)
    m = np.ones_like(t, dtype=bool)
    got = compute_metrics(t, p, m)
    # Gene 0 predicted constant: PCC 0, R2 = 1 - 14/2. Gene 1: r = 0.5, R2 = 0.
    # Gene 2 has constant truth: PCC 0, R2 skipped.
    assert got.pcc_gene == pytest.approx((0 + 0.5 + 0) / 3, rel=1e-12)
    assert got.r2_gene == pytest.approx((-6 + 0) / 2, rel=1e-12)
    assert got.mse == pytest.approx(45 / 9, rel=1e-12)
    assert got.mae == pytest.approx(17 / 9, rel=1e-12)
    assert got.constant_genes == 1
    assert got.constant_truth_genes == 1
    assert math.isfinite(got.pcc_patch)


def test_constant_spot_prediction_counts_and_scores_zero() -> None:
    rng = np.random.default_rng(3)
    t = rng.random((6, 5)).astype(np.float32)
    p = rng.random((6, 5)).astype(np.float32)
    p[2] = 0.3
    m = np.ones_like(t, dtype=bool)
    detail = compute_metrics_detailed(t, p, m)
    assert detail.metrics.constant_spots == 1
    assert detail.spot_pcc[2] == 0.0
    assert np.isfinite(detail.spot_pcc).all()


def test_all_genes_single_valued_gives_no_r2_instead_of_nan() -> None:
    t = np.arange(12, dtype=np.float32).reshape(4, 3)
    p = t + 1
    m = np.zeros((4, 3), dtype=bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True
    got = compute_metrics(t, p, m)
    assert got.r2_gene is None
    assert got.pcc_gene == 0.0
    assert got.single_value_genes == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n_spots", "n_genes", "density"), [
    (40, 7, 0.9), (300, 32, 0.3), (1500, 128, 0.7), (257, 64, 0.05),
])
def test_equals_per_column_reference_on_random_masked_data(
    dtype: type, n_spots: int, n_genes: int, density: float
) -> None:
    rng = np.random.default_rng(n_spots * n_genes)
    t = (rng.gamma(2.0, 1.0, (n_spots, n_genes)) * rng.random(n_genes) * 4).astype(dtype)
    p = (t + rng.normal(0, 1.0, t.shape)).astype(dtype)
    m = rng.random(t.shape) < density
    m[:, 0] = False  # an unmeasured gene
    m[1] = False  # an unmeasured spot
    m[:, 1] = False
    m[5, 1] = True  # a single-value gene
    p[:, 2] = dtype(1.25)  # a constant gene prediction
    t[~m] = np.nan  # unmeasured truth never matters
    got = compute_metrics(t, p, m)
    want = reference_metrics(t, p, m)
    for name in METRICS:
        assert getattr(got, name) == pytest.approx(want[name], rel=1e-9, abs=1e-12), name
    assert got.constant_genes == (1 if m[:, 2].sum() >= 2 else 0)


def test_ill_conditioned_columns_are_exact() -> None:
    # Predictions with a huge offset and tiny spread defeat one-pass Σx² - (Σx)²/n.
    rng = np.random.default_rng(11)
    t = rng.random((500, 16)) * 3
    p = 1e4 + 1e-4 * rng.standard_normal((500, 16))
    p[:, 3] = t[:, 3] * 1e-5 + 1e4
    m = rng.random(t.shape) < 0.6
    got = compute_metrics(t, p, m)
    want = reference_metrics(t, p, m)
    for name in ("pcc_gene", "pcc_patch", "r2_gene"):
        assert getattr(got, name) == pytest.approx(want[name], rel=1e-7, abs=1e-10), name


def test_perfect_prediction_scores_one_and_zero_error() -> None:
    rng = np.random.default_rng(2)
    t = rng.random((50, 8)).astype(np.float32)
    got = compute_metrics(t, t.copy(), rng.random(t.shape) < 0.8)
    assert got.mse == 0.0
    assert got.pcc_gene == pytest.approx(1.0, abs=1e-12)
    assert got.r2_patch == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("change", "needle"), [
    ("shape", "one shape"),
    ("mask_dtype", "dtype bool"),
    ("empty_mask", "at least one measured"),
    ("nan_pred", "non-finite"),
    ("int_truth", "float32 or float64"),
])
def test_bad_metric_inputs_are_rejected(change: str, needle: str) -> None:
    t = np.ones((4, 3), dtype=np.float32)
    t[0, 0] = 2
    p = np.ones((4, 3), dtype=np.float32)
    m = np.ones((4, 3), dtype=bool)
    if change == "shape":
        p = np.ones((3, 4), dtype=np.float32)
    elif change == "mask_dtype":
        m = m.astype(np.uint8)
    elif change == "empty_mask":
        m[:] = False
    elif change == "nan_pred":
        p[2, 1] = np.nan
    elif change == "int_truth":
        t = t.astype(np.int32)
    with pytest.raises(MetricInputError, match=needle):
        compute_metrics(t, p, m)


def test_nan_on_unmeasured_prediction_entries_is_ignored() -> None:
    t = np.array([[1, 2], [2, 1], [3, 3]], dtype=np.float32)
    p = np.array([[1, np.nan], [2, 1], [2, 3]], dtype=np.float32)
    m = np.array([[1, 0], [1, 1], [1, 1]], dtype=bool)
    got = compute_metrics(t, p, m)
    assert got.mse == pytest.approx(1 / 5)


def test_summary_and_detailed_paths_agree() -> None:
    rng = np.random.default_rng(9)
    t = rng.random((120, 20))
    p = t * 0.7 + rng.random(t.shape)
    m = rng.random(t.shape) < 0.6
    m[3] = False
    detail = compute_metrics_detailed(t, p, m)
    assert compute_metrics(t, p, m) == detail.metrics
    assert detail.metrics.pcc_patch == pytest.approx(np.nanmean(detail.spot_pcc), rel=1e-12)
    assert detail.metrics.r2_gene == pytest.approx(np.nanmean(detail.gene_r2), rel=1e-12)
    assert np.isnan(detail.spot_pcc[3]) and detail.spot_n[3] == 0
