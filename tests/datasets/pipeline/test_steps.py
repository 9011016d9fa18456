"""Each step function against a direct computation on small seeded data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from evaluator.core.visium import hex_neighbors
from evaluator.datasets.pipeline import steps
from tests.datasets.pipeline.conftest import moran_formula


@pytest.fixture
def counts() -> sp.csr_matrix:
    rng = np.random.default_rng(7)
    dense = rng.poisson(0.7, (30, 12)).astype(np.float32)
    dense[4] = 0.0  # an empty spot
    dense[:, 3] = 0.0  # a gene never seen
    return sp.csr_matrix(dense)


def test_inside_is_strict_as_spared() -> None:
    values = np.array([10.0, 10.5, 999_999.0, 1_000_000.0, 0.0])
    assert steps.inside(values, 10, 1_000_000).tolist() == [False, True, True, False, False]


def test_totals_and_missing_fraction(counts: sp.csr_matrix) -> None:
    dense = counts.toarray()
    np.testing.assert_array_equal(steps.spot_totals(counts), dense.sum(axis=1))
    np.testing.assert_array_equal(steps.gene_totals(counts), dense.sum(axis=0))
    assert steps.missing_fraction(counts) == pytest.approx(np.mean(dense == 0))
    assert steps.missing_fraction(dense) == pytest.approx(np.mean(dense == 0))


def test_expression_fractions_loop(counts: sp.csr_matrix) -> None:
    codes = np.repeat([0, 1, 2], 10)
    exp_frac, glob = steps.expression_fractions(counts, codes)
    dense = counts.toarray()
    for g in range(dense.shape[1]):
        per_slide = [np.mean(dense[codes == s, g] > 0) for s in range(3)]
        assert exp_frac[g] == pytest.approx(min(per_slide))
        assert glob[g] == pytest.approx(np.mean(dense[:, g] > 0))


def _rule_loop(exp_frac: list[float], glob: list[float], percentage: float) -> set[int]:
    order = sorted(range(len(exp_frac)), key=lambda i: (-exp_frac[i], i))
    last = -1
    total = 0.0
    for rank, gene in enumerate(order, start=1):
        total += glob[gene]
        if total / rank >= percentage:
            last = rank - 1
    return set(order[: last + 1])


@pytest.mark.parametrize("percentage", [0.0, 0.3, 0.7, 0.95, 1.0])
def test_real_data_rule_matches_a_loop(percentage: float) -> None:
    rng = np.random.default_rng(11)
    exp_frac = np.round(rng.uniform(0, 1, 40), 1)  # ties on purpose
    glob = np.clip(exp_frac + rng.normal(0, 0.15, 40), 0, 1)
    kept = steps.real_data_rule(exp_frac, glob, percentage)
    assert set(np.flatnonzero(kept).tolist()) == _rule_loop(exp_frac.tolist(), glob.tolist(),
                                                            percentage)


def test_real_data_rule_keeps_up_to_the_last_position_reaching_it() -> None:
    # Running means of glob in exp_frac order: 1.0, 0.5, 0.667, 0.5 -> last >= 0.6 is third.
    exp_frac = np.array([0.4, 0.9, 0.8, 0.7])
    glob = np.array([0.0, 1.0, 0.0, 1.0])
    assert steps.real_data_rule(exp_frac, glob, 0.6).tolist() == [False, True, True, True]
    assert not steps.real_data_rule(exp_frac, glob, 1.01).any()


def test_tpm_and_log2(counts: sp.csr_matrix) -> None:
    lengths = np.linspace(500, 5000, counts.shape[1])
    dense = counts.toarray().astype(np.float64)
    per_length = dense / lengths
    totals = per_length.sum(axis=1, keepdims=True)
    expected = np.divide(per_length * 1e6, totals, out=np.zeros_like(per_length),
                         where=totals > 0)
    tpm = steps.tpm(counts, lengths)
    np.testing.assert_allclose(tpm, expected, rtol=1e-6)
    nonempty = dense.sum(axis=1) > 0
    np.testing.assert_allclose(tpm[nonempty].sum(axis=1), 1e6, rtol=1e-5)
    assert not tpm[4].any()
    # A block of genes normalized with the whole spot's factor equals the full computation.
    scale = steps.tpm_scale(counts, lengths)
    block = steps.tpm(counts[:, 5:9], lengths[5:9], scale)
    np.testing.assert_allclose(block, tpm[:, 5:9], rtol=1e-6)
    np.testing.assert_allclose(steps.log2_1p(tpm), np.log2(expected + 1), rtol=1e-6)


def _grid(n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    valid = (rows + cols) % 2 == 0
    return rows[valid], cols[valid]


def test_morans_i_equals_the_formula() -> None:
    rng = np.random.default_rng(5)
    rows, cols = _grid(8, 14)
    rows, cols = np.append(rows, 30), np.append(cols, 30)  # an isolated spot
    n = rows.size
    smooth = np.sin(rows / 2.0) + np.cos(cols / 3.0)
    values = np.stack([smooth, rng.normal(size=n), smooth + rng.normal(0, 0.5, n),
                       np.where(rng.random(n) < 0.3, 0.0, rng.gamma(2.0, 1.0, n))], axis=1)
    scores = steps.morans_i(values, hex_neighbors(rows, cols))
    expected = [moran_formula(values[:, g], rows, cols) for g in range(values.shape[1])]
    np.testing.assert_allclose(scores, expected, rtol=1e-9, atol=1e-12)
    assert scores[0] > 0.5 > abs(scores[1])
    np.testing.assert_allclose(steps.morans_i_numpy(values, hex_neighbors(rows, cols)),
                               expected, rtol=1e-9, atol=1e-12)


def test_constant_gene_has_no_moran_and_slides_average() -> None:
    rows, cols = _grid(6, 10)
    n = rows.size
    rng = np.random.default_rng(2)
    a = rng.normal(size=(n, 2))
    b = rng.normal(size=(n, 2))
    b[:, 1] = 3.0  # constant on the second slide
    values = np.concatenate([a, b])
    groups = [(np.arange(n), hex_neighbors(rows, cols)),
              (np.arange(n, 2 * n), hex_neighbors(rows, cols))]
    first = [moran_formula(a[:, g], rows, cols) for g in range(2)]
    second = moran_formula(b[:, 0], rows, cols)
    for backend in ("squidpy", "numpy"):
        scores = steps.mean_morans_i(values, groups, backend)  # type: ignore[arg-type]
        assert scores[0] == pytest.approx((first[0] + second) / 2, rel=1e-9)
        assert scores[1] == pytest.approx(first[1], rel=1e-9)  # NaN of slide 2 skipped
    assert np.isnan(steps.morans_i(b, hex_neighbors(rows, cols))[1])
    assert np.isnan(steps.morans_i_numpy(b, hex_neighbors(rows, cols))[1])


def test_top_k_breaks_ties_by_position_and_puts_nan_last() -> None:
    scores = np.array([0.2, np.nan, 0.9, 0.2, 0.5, np.nan, 0.9])
    assert steps.ranking(scores).tolist() == [2, 6, 4, 0, 3, 1, 5]
    assert steps.top_k(scores, 3).tolist() == [2, 6, 4]


def test_deltas_use_the_training_mean() -> None:
    values = np.arange(12, dtype=np.float32).reshape(4, 3)
    train = np.array([True, True, False, False])
    centred, mean = steps.deltas(values, train)
    np.testing.assert_allclose(mean, values[:2].mean(axis=0))
    np.testing.assert_allclose(centred, values - values[:2].mean(axis=0))
    assert centred.dtype == np.float32
