"""Uncertainty: block bootstrap (golden case, scipy.stats.bootstrap), dataset bootstrap of ranks,
Wilcoxon + Holm (scipy.stats.wilcoxon, statsmodels), effect sizes, skill, job scoring."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sstats

from evaluator.scoring import (
    BlockStats,
    SpotLayout,
    compute_metrics,
    compute_statistics,
    dataset_bootstrap,
    holm,
    job_interval,
    paired_tests,
    score_predictions,
    spatial_blocks,
    truth_from_arrays,
    weighted_metrics,
    wilcoxon_pairs,
)
from evaluator.scoring.errors import MetricInputError
from evaluator.scoring.stats import nemenyi_friedman
from evaluator.scoring.uncertainty import block_stats, format_interval, resample_counts

# -- the block bootstrap ------------------------------------------------------------------------


def _golden() -> BlockStats:
    """One gene, two blocks of three spots. Block 0 predicts perfectly (r = 1, squared error 0);
    block 1 predicts the truth reversed (r = -1, squared errors 4, 0, 4)."""
    truth = np.array([[1.0], [2.0], [3.0], [1.0], [2.0], [3.0]])
    pred = np.array([[1.0], [2.0], [3.0], [3.0], [2.0], [1.0]])
    mask = np.ones_like(truth, dtype=bool)
    return block_stats(truth, pred, mask, np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0]))


def test_spatial_blocks_tile_each_slide_by_hand() -> None:
    slides = np.array(["b", "a", "a", "a", "b", "a"])
    rows = np.array([0, 0, 7, 8, 0, 0])
    cols = np.array([0, 0, 15, 0, 16, 16])
    block, block_slide = spatial_blocks(slides, rows, cols)
    # Tiles of 8 rows x 16 columns: (a,0,0) (a,0,1) (a,1,0) (b,0,0) (b,0,1), numbered in order.
    assert block.tolist() == [3, 0, 0, 2, 4, 1]
    assert block_slide.tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(MetricInputError, match="one length"):
        spatial_blocks(slides, rows[:2], cols)


def test_block_statistics_by_hand() -> None:
    stats = _golden()
    assert stats.mse.tolist() == [[3.0, 3.0], [0.0, 8.0]]
    assert stats.gene[0, :, 0].tolist() == [3.0, 3.0]            # measured entries
    assert stats.gene[5, :, 0].tolist() == [2.0, -2.0]           # Σ (t-2)(p-2)
    assert stats.shift[:, 0].tolist() == [2.0, 2.0]
    mse, pcc = weighted_metrics(stats, np.array([[2, 0], [1, 1], [0, 2]]))
    np.testing.assert_allclose(mse, [0.0, 4.0 / 3.0, 8.0 / 3.0])
    np.testing.assert_allclose(pcc, [1.0, 0.0, -1.0])


def test_block_bootstrap_golden_interval() -> None:
    """Each resample is (2,0), (1,1) or (0,2) with chance 1/4, 1/2, 1/4: 2,000 resamples hold
    both extremes, so the percentile interval is exactly the extremes."""
    interval = job_interval(_golden(), n_resamples=2000, seed=14)
    assert (interval.mse, interval.mse_low, interval.mse_high) == pytest.approx((4 / 3, 0, 8 / 3))
    assert (interval.pcc_gene, interval.pcc_gene_low, interval.pcc_gene_high) == \
        pytest.approx((0.0, -1.0, 1.0))
    counts = resample_counts(np.array([0, 0]), 2000, np.random.default_rng(14))
    assert counts.sum(axis=1).tolist() == [2.0] * 2000
    assert 0.46 < float((counts[:, 0] == 1).mean()) < 0.54


def _random_job(seed: int, n_spots: int = 400, n_genes: int = 7):
    rng = np.random.default_rng(seed)
    truth = rng.normal(2.0, 1.0, (n_spots, n_genes))
    pred = truth + rng.normal(0.0, 0.6, truth.shape)
    mask = rng.random(truth.shape) > 0.3
    pred[:, 1] = 0.1                    # constant prediction: PCC 0 (0.1 has no exact mean)
    truth[:, 2] = 0.7                   # constant truth: PCC 0
    mask[:, 3] = False                  # unmeasured gene: skipped
    mask[:, 4] = False
    mask[5, 4] = True                   # a single measured spot: PCC 0
    truth[~mask] = np.nan               # unmeasured entries never count
    return truth, pred, mask, rng


def test_all_blocks_once_give_the_jobs_metrics() -> None:
    truth, pred, mask, rng = _random_job(3)
    reference = compute_metrics(truth, pred, mask)
    layout = (rng.choice(["s1", "s2"], truth.shape[0]), rng.integers(0, 78, truth.shape[0]),
              rng.integers(0, 128, truth.shape[0]))
    block, block_slide = spatial_blocks(*layout)
    stats = block_stats(truth, pred, mask, block, block_slide)
    mse, pcc = weighted_metrics(stats, np.ones(stats.n_blocks))
    assert mse[0] == pytest.approx(reference.mse, rel=1e-12)
    assert pcc[0] == pytest.approx(reference.pcc_gene, rel=1e-12)
    again = BlockStats.from_bytes(stats.to_bytes())
    assert again.block_shape == (8, 16) and again.scheme == "spatial"
    np.testing.assert_array_equal(again.gene, stats.gene)
    np.testing.assert_array_equal(again.block_slide, stats.block_slide)


def test_block_bootstrap_equals_scipy_percentile_bootstrap_on_one_slide() -> None:
    truth, pred, mask, rng = _random_job(5)
    block, block_slide = spatial_blocks(np.full(truth.shape[0], "s"),
                                        rng.integers(0, 60, truth.shape[0]),
                                        rng.integers(0, 120, truth.shape[0]))
    stats = block_stats(truth, pred, mask, block, block_slide)
    interval = job_interval(stats, n_resamples=999, seed=7)

    def statistic(which: int):
        def of(indices: np.ndarray, axis: int = -1) -> np.ndarray:
            indices = np.atleast_2d(indices).astype(np.int64)
            weights = np.zeros((indices.shape[0], stats.n_blocks))
            np.add.at(weights, (np.arange(indices.shape[0])[:, None], indices), 1.0)
            return weighted_metrics(stats, weights)[which]
        return of

    for which, low, high in ((0, interval.mse_low, interval.mse_high),
                             (1, interval.pcc_gene_low, interval.pcc_gene_high)):
        reference = sstats.bootstrap((np.arange(stats.n_blocks),), statistic(which),
                                     n_resamples=999, method="percentile", vectorized=True,
                                     rng=np.random.default_rng(7)).confidence_interval
        assert (low, high) == pytest.approx((reference.low, reference.high), rel=1e-12)
    assert interval.mse_low < interval.mse < interval.mse_high


def test_blocks_widen_the_interval_when_errors_are_spatially_correlated() -> None:
    """Errors shared by neighbours: resampling single spots understates the spread."""
    rng = np.random.default_rng(11)
    rows, cols = np.meshgrid(np.arange(48), np.arange(0, 96, 2), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    patch = rng.normal(0.0, 1.0, (6, 6))[rows // 8, cols // 16]
    truth = rng.normal(0.0, 1.0, (rows.size, 3))
    pred = truth + patch[:, None] + rng.normal(0.0, 0.1, truth.shape)
    mask = np.ones(truth.shape, dtype=bool)
    block, block_slide = spatial_blocks(np.full(rows.size, "s"), rows, cols)
    spatial = job_interval(block_stats(truth, pred, mask, block, block_slide))
    spots = job_interval(block_stats(truth, pred, mask, np.arange(rows.size),
                                     np.zeros(rows.size, dtype=np.int64), scheme="spot"))
    assert spatial.mse_high - spatial.mse_low > 3 * (spots.mse_high - spots.mse_low)


def test_score_predictions_stores_block_statistics_interval_and_hash() -> None:
    truth, pred, mask, rng = _random_job(8, n_spots=300)
    truth = np.nan_to_num(truth).astype(np.float32)
    layout = SpotLayout(slide_id=np.repeat(["A", "B"], 150), array_row=rng.integers(0, 40, 300),
                        array_col=rng.integers(0, 80, 300))
    truth_set = truth_from_arrays(truth, mask, dataset="d", spots=layout)
    score = score_predictions(truth_set, pred.astype(np.float32))
    assert score.interval is not None and score.block_stats is not None
    # 40 rows x 80 columns per slide: 5 x 5 tiles of 8 x 16.
    assert score.interval.scheme == "spatial" and score.interval.n_blocks == 50
    assert score.interval.mse == pytest.approx(score.metrics.mse, rel=1e-9)
    assert score.interval.mse_low < score.metrics.mse < score.interval.mse_high
    assert score.interval.pcc_gene_low < score.metrics.pcc_gene < score.interval.pcc_gene_high
    stored = BlockStats.from_bytes(score.block_stats)
    assert weighted_metrics(stored, np.ones(stored.n_blocks))[1][0] == \
        pytest.approx(score.metrics.pcc_gene, rel=1e-9)
    assert "block_stats" not in score.model_dump(mode="json")
    same = score_predictions(truth_set, pred.astype(np.float32).copy())
    other = score_predictions(truth_set, (pred + 1e-3).astype(np.float32))
    assert same.predictions_sha256 == score.predictions_sha256 != other.predictions_sha256
    plain = score_predictions(truth_from_arrays(truth, mask, dataset="d"),
                              pred.astype(np.float32))
    assert plain.interval is not None and plain.interval.scheme == "spot"
    assert plain.interval.n_blocks == 300


# -- the ranking --------------------------------------------------------------------------------


def test_dataset_bootstrap_equals_scipy_percentile_bootstrap_per_entry() -> None:
    rng = np.random.default_rng(2)
    normalized = 1.0 + rng.gamma(2.0, 0.1, (26, 5))
    boot = dataset_bootstrap(normalized, n_resamples=2000, seed=21)
    for e in range(5):
        reference = sstats.bootstrap((normalized[:, e],), np.mean, n_resamples=2000,
                                     method="percentile",
                                     rng=np.random.default_rng(21)).confidence_interval
        assert (boot.mean_low[e], boot.mean_high[e]) == \
            pytest.approx((reference.low, reference.high), rel=1e-12)
    again = dataset_bootstrap(normalized, n_resamples=2000, seed=21)
    np.testing.assert_array_equal(again.mean_low, boot.mean_low)
    np.testing.assert_array_equal(again.rank_high, boot.rank_high)
    other = dataset_bootstrap(normalized, n_resamples=2000, seed=22)
    assert not np.array_equal(other.mean_low, boot.mean_low)


def test_rank_intervals_by_hand() -> None:
    # A beats everyone on every dataset: rank 1 in every resample. B and C alternate: each
    # ranks 2 or 3 depending on the draw. D is last everywhere.
    normalized = np.array([[1.0, 1.1, 1.2, 2.0], [1.0, 1.2, 1.1, 2.0]] * 5)
    boot = dataset_bootstrap(normalized, n_resamples=500, seed=1)
    assert boot.rank_low.tolist() == [1, 2, 2, 4]
    assert boot.rank_high.tolist() == [1, 3, 3, 4]
    assert (boot.mean_low[0], boot.mean_high[0]) == pytest.approx((1.0, 1.0), abs=1e-12)
    # B and C tie whenever both rows are drawn equally often: ties share the better rank.
    level = dataset_bootstrap(np.array([[1.0, 1.1, 1.2], [1.0, 1.2, 1.1]]), n_resamples=50)
    assert level.rank_low.tolist() == [1, 2, 2]


def test_compute_statistics_reports_intervals_skill_and_pairs() -> None:
    rows = [{"entry": e, "dataset": f"d{d}", "mse": v * (1 + 0.1 * d)}
            for e, v in (("mean", 2.0), ("good", 1.0), ("ok", 1.5)) for d in range(6)]
    report = compute_statistics(rows, reference_entry="mean", n_resamples=300, seed=3)
    by = {e.entry: e for e in report.entries}
    # MSE is a fixed multiple of the mean baseline's on every dataset: skill 1 - 1/2, 1 - 1.5/2.
    assert (by["good"].skill, by["good"].skill_low, by["good"].skill_high) == \
        pytest.approx((0.5, 0.5, 0.5))
    assert by["ok"].skill == pytest.approx(0.25) and by["mean"].skill == pytest.approx(0.0)
    assert (by["good"].rank_low, by["good"].rank_high) == (1, 1)
    assert by["good"].mean_normalized_mse_low == pytest.approx(1.0)
    assert report.bootstrap is not None and report.bootstrap.n_resamples == 300
    assert report.skill_reference == "mean"
    assert report.wilcoxon is not None
    pairs = {(p.a, p.b): p for p in report.wilcoxon.pairs()}
    assert set(pairs) == {("good", "ok"), ("good", "mean"), ("ok", "mean")}
    first = pairs[("good", "mean")]
    # Six datasets, all in favour of "good": exact p = 2 / 2^6, Holm multiplies by 3.
    assert first.p_value == pytest.approx(2 / 64) and first.p_holm == pytest.approx(6 / 64)
    assert first.rank_biserial == -1.0 and first.median_difference == pytest.approx(-1.0)
    missing = compute_statistics(rows, reference_entry="nobody", n_resamples=10)
    assert missing.skill_reference is None and "not complete" in (missing.skill_reason or "")
    assert all(e.skill is None for e in missing.entries)


def test_format_interval() -> None:
    assert format_interval(1.0349, 1.0149, 1.0731) == "1.035 [1.01, 1.07]"
    assert format_interval(None, None, None) == "—"


# -- paired tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [6, 10, 13, 14, 26, 60])
def test_wilcoxon_equals_scipy_with_and_without_ties_and_zeros(n: int) -> None:
    rng = np.random.default_rng(n)
    rows = []
    for kind in range(4):
        for _ in range(2 if n <= 13 else 6):     # scipy's permutation path is slow
            d = rng.normal(0.2, 1.0, n)
            if kind in (1, 3):
                d = np.round(d, 1)      # ties
            if kind in (2, 3):
                d[: n // 4] = 0.0       # zeros
            rows.append(d)
    d = np.array(rows)
    statistic, p, r_plus, r_minus, methods = wilcoxon_pairs(d)
    non_zero = (d != 0).sum(axis=1)
    np.testing.assert_allclose(r_plus + r_minus, non_zero * (non_zero + 1) / 2)
    for i, row in enumerate(d):
        reference = sstats.wilcoxon(row)
        assert statistic[i] == reference.statistic
        assert p[i] == pytest.approx(reference.pvalue, rel=1e-12, abs=1e-300)
    assert ("exact" in methods) == (n <= 50)
    assert ("permutation" in methods) == (n <= 13)
    assert ("normal" in methods) == (n > 13)


def test_wilcoxon_of_identical_entries_is_one() -> None:
    statistic, p, *_ = wilcoxon_pairs(np.zeros((1, 8)))
    assert (statistic[0], p[0]) == (0.0, 1.0)


def test_holm_equals_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(4)
    p = np.concatenate([rng.uniform(0, 0.01, 10), rng.uniform(0, 1, 40), [0.02, 0.02]])
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=1e-14)
    assert holm(np.array([])).size == 0


def test_rank_biserial_and_median_difference_by_hand() -> None:
    mse = np.array([[2.0, 1.0], [1.0, 3.0], [4.0, 1.0]])   # d = 1, -2, 3: R+ = 1 + 3, R- = 2
    normalized = mse / mse.min(axis=1, keepdims=True)
    (pair,) = paired_tests(mse, normalized, ["A", "B"]).pairs()
    assert pair.rank_biserial == pytest.approx((4 - 2) / 6)
    assert pair.median_difference == pytest.approx(np.median([1.0, -2.0, 3.0]))
    assert pair.statistic == 2.0 and pair.method == "exact"
    assert len(paired_tests(mse[:, :1], normalized[:, :1], ["A"])) == 0


def test_wilcoxon_verdict_does_not_depend_on_the_pool_but_nemenyi_does() -> None:
    rng = np.random.default_rng(9)
    a = rng.gamma(3.0, 0.1, 12) + 0.5
    b = a * rng.uniform(1.0, 1.2, 12)
    mse = np.column_stack([a, b])
    crowd = np.column_stack([mse, *(a * rng.uniform(0.6, 1.6, 12) for _ in range(6))])
    alone = paired_tests(mse, mse / mse.min(axis=1, keepdims=True), ["a", "b"]).pairs()[0]
    pooled = paired_tests(crowd, crowd / crowd.min(axis=1, keepdims=True),
                          ["a", "b", *"cdefgh"]).pairs()[0]
    assert alone.p_value == pooled.p_value
    assert nemenyi_friedman(mse)[0, 1] != pytest.approx(nemenyi_friedman(crowd)[0, 1])


def test_h5ad_truth_knows_where_its_hidden_spots_lie(tmp_path) -> None:
    import anndata as ad
    import pandas as pd

    from evaluator.scoring import load_truth

    rng = np.random.default_rng(12)
    n = 40
    splits = ["train"] * 10 + ["test"] * 30
    obs = pd.DataFrame({"split": pd.Categorical(splits),
                        "slide_id": pd.Categorical(["s1"] * 20 + ["s2"] * 20),
                        "array_row": np.arange(n) % 20, "array_col": (np.arange(n) % 20) * 2},
                       index=[f"spot{i}" for i in range(n)])
    truth = rng.random((n, 4)).astype(np.float32)
    mask = rng.random((n, 4)) < 0.8
    ad.AnnData(X=truth.copy(), obs=obs, var=pd.DataFrame(index=list("ABCD")),
               layers={"c_d_log1p": truth, "mask": mask}).write_h5ad(tmp_path / "d.h5ad")
    loaded = load_truth(tmp_path / "d.h5ad")
    assert loaded.spots is not None
    assert loaded.spots.slide_id.tolist() == ["s1"] * 10 + ["s2"] * 20
    assert loaded.spots.array_row.tolist() == (np.arange(10, 40) % 20).tolist()
    pred = (loaded.truth + 0.1).astype(np.float32)
    score = score_predictions(loaded, pred)
    # Slide s1: rows 10-19 -> tile row 1; s2: rows 0-19 -> tile rows 0, 1 and columns 0-38 ->
    # tile columns 0, 1, 2: tiles (s1,1,0) (s1,1,1) (s1,1,2)... counted from the layout itself.
    keys = {(s, r // 8, c // 16) for s, r, c in zip(loaded.spots.slide_id, loaded.spots.array_row,
                                                   loaded.spots.array_col, strict=True)}
    assert score.interval is not None and score.interval.scheme == "spatial"
    assert score.interval.n_blocks == len(keys)
