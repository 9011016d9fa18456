"""Statistics: Dunn vs the formula and scikit-posthocs, ranks, groups, Friedman/CD, diagram."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy import stats as sstats

from evaluator.scoring import (
    PValueMatrix,
    ResultsTableError,
    compute_statistics,
    critical_difference,
    critical_difference_svg,
    dunn_bonferroni,
    report_cd_svg,
    significance_groups,
)
from evaluator.scoring.cd_diagram import cliques
from evaluator.scoring.stats import nemenyi_friedman, studentized_range_sf_inf

DATASETS = [f"d{i:02d}" for i in range(26)]


def dunn_by_formula(groups: list[np.ndarray]) -> np.ndarray:
    """Dunn (1964) z-test on pooled mid-ranks with tie correction, two-sided, Bonferroni."""
    pooled = np.concatenate(groups)
    n = pooled.size
    ranks = sstats.rankdata(pooled)
    sizes = [g.size for g in groups]
    bounds = np.cumsum([0, *sizes])
    mean_rank = [ranks[bounds[i]:bounds[i + 1]].mean() for i in range(len(groups))]
    _, tie_counts = np.unique(pooled, return_counts=True)
    tie_term = ((tie_counts**3 - tie_counts).sum()) / (12.0 * (n - 1))
    k = len(groups)
    out = np.ones((k, k))
    comparisons = k * (k - 1) / 2
    for i in range(k):
        for j in range(k):
            if i == j:
                continue
            se = math.sqrt((n * (n + 1) / 12.0 - tie_term) * (1 / sizes[i] + 1 / sizes[j]))
            z = abs(mean_rank[i] - mean_rank[j]) / se
            p = 2 * (1 - sstats.norm.cdf(z))
            out[i, j] = min(1.0, p * comparisons)
    return out


def _table(values: dict[str, list[float]], datasets: list[str] = DATASETS) -> list[dict]:
    return [
        {"entry": e, "dataset": d, "mse": v, "pcc_gene": 1 / v}
        for e, vs in values.items() for d, v in zip(datasets, vs, strict=True)
    ]


def test_dunn_matches_formula_and_scikit_posthocs_with_ties() -> None:
    import scikit_posthocs as sp

    rng = np.random.default_rng(0)
    groups = [np.round(rng.gamma(2, 1, 26) + shift, 1) for shift in (0.0, 0.3, 1.5, 3.0)]
    assert len(np.unique(np.concatenate(groups))) < 104  # ties present
    got = np.array(dunn_bonferroni(groups, list("ABCD")).p_values)
    np.testing.assert_allclose(got, dunn_by_formula(groups), rtol=1e-10, atol=1e-14)
    direct = sp.posthoc_dunn([g.copy() for g in groups], p_adjust="bonferroni").to_numpy()
    np.testing.assert_allclose(got, direct, rtol=1e-12)
    assert got[0, 3] < 0.05 < got[0, 1]


def test_ranking_normalization_and_wins_on_a_known_case() -> None:
    rows = _table({"X": [1.0, 4.0], "Y": [2.0, 2.0], "Z": [4.0, 8.0]}, ["a", "b"])
    report = compute_statistics(rows)
    by = {e.entry: e for e in report.entries}
    assert report.normalized_mse["X"] == {"a": 1.0, "b": 2.0}
    assert report.normalized_mse["Z"] == {"a": 4.0, "b": 4.0}
    assert by["X"].mean_normalized_mse == pytest.approx(1.5)
    assert by["X"].std_normalized_mse == pytest.approx(math.sqrt(0.5))
    assert by["Y"].mean_normalized_mse == pytest.approx(1.5)
    # X and Y tie on mean normalised MSE: both rank 1, Z rank 3.
    assert (by["X"].rank, by["Y"].rank, by["Z"].rank) == (1, 1, 3)
    assert (by["X"].datasets_won, by["Y"].datasets_won, by["Z"].datasets_won) == (1, 1, 0)
    assert by["Z"].mean_pcc_gene == pytest.approx((1 / 4 + 1 / 8) / 2)
    assert by["Z"].mean_mse == pytest.approx(6.0)


def test_groups_follow_dunn_on_separated_entries() -> None:
    base = np.linspace(0.5, 1.5, 26)
    rows = _table({
        "A": list(base), "B": list(base + 0.001),
        "C": list(base + 10), "D": list(base + 10.001),
    })
    report = compute_statistics(rows)
    by = {e.entry: e for e in report.entries}
    assert report.test_status == "tested"
    assert report.kruskal is not None and report.kruskal.significant
    assert report.dunn is not None
    assert report.dunn.get("A", "C") < 0.05 <= report.dunn.get("A", "B")
    assert [by[e].group for e in "ABCD"] == [1, 1, 2, 2]
    assert [by[e].rank for e in "ABCD"] == [1, 2, 3, 4]


def test_group_rule_takes_non_different_entries_wherever_they_rank() -> None:
    labels = ["A", "B", "C", "D"]
    p = np.ones((4, 4))
    for (a, b), v in {("A", "B"): 0.01, ("A", "C"): 0.5, ("A", "D"): 0.001,
                      ("B", "C"): 0.02, ("B", "D"): 0.2, ("C", "D"): 0.03}.items():
        i, j = labels.index(a), labels.index(b)
        p[i, j] = p[j, i] = v
    matrix = PValueMatrix(method="test", labels=labels, p_values=p.tolist())
    assert significance_groups(labels, matrix, 0.05) == {"A": 1, "C": 1, "B": 2, "D": 2}
    assert significance_groups(labels, matrix, 0.001) == dict.fromkeys(labels, 1)


def test_kruskal_not_significant_puts_everyone_in_group_one() -> None:
    rng = np.random.default_rng(1)
    rows = _table({e: list(rng.random(26) + 1) for e in "PQR"})
    report = compute_statistics(rows)
    assert report.kruskal is not None and not report.kruskal.significant
    assert {e.group for e in report.ranked()} == {1}


def test_incomplete_entries_are_listed_with_reason_and_left_out() -> None:
    rows = _table({"A": [1.0] * 26, "B": [2.0] * 26, "C": [3.0] * 26})
    rows = [r for r in rows if not (r["entry"] == "C" and r["dataset"] in ("d03", "d07"))]
    rows.append({"entry": "E", "dataset": "d00", "mse": float("nan"), "pcc_gene": 0.1})
    report = compute_statistics(rows)
    by = {e.entry: e for e in report.entries}
    assert not by["C"].complete and by["C"].rank is None and by["C"].group is None
    assert "missing 2 of 26 datasets: d03, d07" in (by["C"].incomplete_reason or "")
    assert "no finite MSE on: d00" in (by["E"].incomplete_reason or "")
    assert report.dunn is not None and report.dunn.labels == ["A", "B"]
    assert "C" not in report.normalized_mse
    assert report.friedman is None and "at least 3" in (report.friedman_reason or "")


def test_release_datasets_make_entries_incomplete() -> None:
    rows = _table({"A": [1.0, 2.0], "B": [2.0, 1.5]}, ["a", "b"])
    report = compute_statistics(rows, datasets=["a", "b", "c"])
    assert report.ranked() == []
    assert report.test_status == "not_enough"
    assert all("missing 1 of 3 datasets: c" in (e.incomplete_reason or "") for e in report.entries)


@pytest.mark.parametrize(("values", "reason"), [
    ({"A": [1.0, 2.0]}, "need at least 2 complete entries, found 1"),
    ({"A": [1.0, 1.0], "B": [1.0, 1.0], "C": [1.0, 1.0]}, "same MSE on every dataset"),
])
def test_not_enough_to_test(values: dict[str, list[float]], reason: str) -> None:
    report = compute_statistics(_table(values, ["a", "b"]))
    assert report.test_status == "not_enough"
    assert reason in (report.test_reason or "")
    assert report.kruskal is None and report.dunn is None and report.friedman is None
    assert all(e.group is None and e.rank == 1 for e in report.ranked())


def test_bad_tables_are_rejected() -> None:
    with pytest.raises(ResultsTableError, match="columns"):
        compute_statistics([{"entry": "A", "dataset": "a"}])
    with pytest.raises(ResultsTableError, match="one row per"):
        compute_statistics([{"entry": "A", "dataset": "a", "mse": 1.0}] * 2)
    with pytest.raises(ResultsTableError, match="positive MSE"):
        compute_statistics([{"entry": "A", "dataset": "a", "mse": 0.0}])


@pytest.mark.parametrize(("k", "q_demsar"), [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728),
                                              (10, 3.164)])
def test_critical_difference_matches_demsar_table(k: int, q_demsar: float) -> None:
    q, cd = critical_difference(k, 26, 0.05)
    assert q == pytest.approx(q_demsar, abs=1e-3)
    assert cd == pytest.approx(q * math.sqrt(k * (k + 1) / (6 * 26)))


def test_friedman_nemenyi_and_average_ranks() -> None:
    import scikit_posthocs as sp

    rng = np.random.default_rng(4)
    noise = rng.random((26, 4)) * 0.2
    matrix = np.array([1.0, 1.1, 1.5, 2.0]) + noise
    rows = _table({e: list(matrix[:, i]) for i, e in enumerate("ABCD")})
    report = compute_statistics(rows)
    f = report.friedman
    assert f is not None
    order = report.dunn.labels if report.dunn else []
    cols = np.column_stack([matrix[:, "ABCD".index(e)] for e in order])
    want = sstats.friedmanchisquare(*cols.T)
    assert f.statistic == pytest.approx(want.statistic)
    assert f.p_value == pytest.approx(want.pvalue)
    ranks = sstats.rankdata(cols, axis=1).mean(axis=0)
    assert [f.average_ranks[e] for e in order] == pytest.approx(list(ranks))
    # scipy's studentized_range.sf is 1 - cdf (quadrature tolerance ~1e-11 absolute), so its
    # p-values below ~1e-9 carry only absolute precision; ours keep relative precision there.
    np.testing.assert_allclose(
        np.array(f.nemenyi.p_values), sp.posthoc_nemenyi_friedman(cols).to_numpy(),
        rtol=1e-6, atol=1e-13,
    )
    assert f.critical_difference == pytest.approx(2.569 * math.sqrt(4 * 5 / (6 * 26)), rel=1e-3)
    assert f.average_ranks["D"] > f.average_ranks["A"]


# P(Q > q) of the studentized range (df = ∞) by 40-digit quadrature (mpmath) of
# k ∫ φ(z) [Φ(z)^(k-1) - (Φ(z) - Φ(z-q))^(k-1)] dz.
STUDENTIZED_RANGE_SF_GOLDEN = [
    (2, 2.5, 0.07709987174354177),
    (3, 1.5, 0.53859515541642977),
    (3, 6.0, 6.5573498433088362e-5),
    (4, 12.0, 1.2911823485653216e-16),
    (10, 4.5, 0.047305827312928572),
    (100, 6.0, 0.062516555461499043),
    (100, 17.0, 1.3673504149180496e-29),
    (500, 8.0, 0.0015749830746397852),
]


@pytest.mark.parametrize(("k", "q", "want"), STUDENTIZED_RANGE_SF_GOLDEN)
def test_studentized_range_sf_matches_high_precision_and_scipy(
    k: int, q: float, want: float
) -> None:
    got = float(studentized_range_sf_inf(np.array([q]), k)[0])
    assert got == pytest.approx(want, rel=1e-12)
    assert got == pytest.approx(sstats.studentized_range.sf(q, k, np.inf), rel=1e-6, abs=1e-13)


def test_studentized_range_sf_is_one_at_zero_and_keeps_shape() -> None:
    got = studentized_range_sf_inf(np.array([[0.0, 3.0], [3.0, 40.0]]), 5)
    assert got.shape == (2, 2)
    assert got[0, 0] == pytest.approx(1.0, abs=1e-14)
    assert got[0, 1] == got[1, 0]
    assert 0.0 <= got[1, 1] < 1e-100


@pytest.mark.parametrize(("n", "k", "ties", "seed"), [
    (26, 3, False, 0), (26, 4, True, 1), (5, 10, False, 2), (26, 30, True, 3),
    (26, 100, False, 4), (3, 7, True, 5), (12, 50, False, 6),
])
def test_nemenyi_matches_scikit_posthocs(n: int, k: int, ties: bool, seed: int) -> None:
    import scikit_posthocs as sp

    rng = np.random.default_rng(seed)
    matrix = rng.random((n, k)) + np.linspace(0, 2, k) * rng.random()
    if ties:
        matrix = np.round(matrix, 1)
    got = nemenyi_friedman(matrix)
    want = sp.posthoc_nemenyi_friedman(matrix).to_numpy()
    # Relative 1e-6 down to scipy's own absolute floor (its sf is 1 - cdf, tolerance ~1e-11).
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-13)
    np.testing.assert_array_equal(got, got.T)
    assert (np.diag(got) == 1.0).all()


def test_cd_diagram_is_valid_svg_with_every_entry_and_cliques() -> None:
    ranks = {"alpha": 1.2, "beta": 1.9, "gamma": 3.4, "delta<&>": 3.5}
    assert cliques(ranks, 1.0) == [["alpha", "beta"], ["gamma", "delta<&>"]]
    assert cliques(ranks, 3.0) == [["alpha", "beta", "gamma", "delta<&>"]]
    svg = critical_difference_svg(ranks, 1.0, title="CD")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text or "" for t in root.iter(f"{ns}text") if t.get("class") == "entry"]
    assert sorted(t.split(" (")[0] for t in texts) == sorted(ranks)
    assert len([e for e in root.iter(f"{ns}line") if e.get("class") == "clique"]) == 2
    assert "CD = 1.000" in svg


def test_report_cd_svg_needs_friedman() -> None:
    two = compute_statistics(_table({"A": [1.0, 2.0], "B": [2.0, 3.0]}, ["a", "b"]))
    assert report_cd_svg(two) is None
    rows = _table({e: [1.0 + i + 0.1 * j for j in range(26)] for i, e in enumerate("ABC")})
    svg = report_cd_svg(compute_statistics(rows))
    assert svg is not None and svg.startswith("<svg")


def test_hundred_entries_rank_and_test_quickly() -> None:
    rng = np.random.default_rng(9)
    quality = rng.random(100) * 2 + 1
    rows = _table({f"e{i:03d}": list(quality[i] * (1 + 0.1 * rng.random(26)))
                   for i in range(100)})
    report = compute_statistics(rows)
    assert len(report.ranked()) == 100
    assert report.ranked()[0].entry == f"e{int(np.argmin(quality)):03d}"
    assert report.dunn is not None
    leader = report.ranked()[0].entry
    for e in report.ranked():
        assert e.group is not None
        in_first = e.group == 1
        assert in_first == (report.dunn.get(leader, e.entry) >= report.alpha), e.entry
