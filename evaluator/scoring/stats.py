"""Statistics over leaderboard entries of one track and release: normalisation, ranks, tests.

Input: a long table, one row per (entry, dataset), with columns ``entry``, ``dataset``, ``mse``
and optionally ``pcc_gene`` (other columns are ignored).

- Complete entries have a finite MSE on every dataset of the release (``datasets``, by default
  every dataset in the table). Others are listed as incomplete, with the reason, and take part
  in nothing below.
- Normalised MSE (paper Fig. 8a) = MSE / the best (lowest) MSE among complete entries on that
  dataset. Entries are ranked by their mean normalised MSE (ties share the better rank); also
  reported: its sample standard deviation (ddof=1; 0 with one dataset), mean MSE, mean PCC-Gene,
  and datasets won (lowest MSE on the dataset; ties all win).
- Kruskal–Wallis on per-dataset MSE grouped by entry, then Dunn's test (Dunn 1964, with tie
  correction) with Bonferroni adjustment via scikit-posthocs — the p-value matrix of the paper's
  Table 3. Significance level ``alpha`` (default 0.05).
- Significance groups, over complete entries in rank order: group 1 is the leader and every
  entry whose Dunn-adjusted p-value against the leader is ≥ alpha (not significantly different
  from it), wherever it ranks. Of the entries left, the best-ranked heads group 2, which takes
  every remaining entry not significantly different from that head; and so on down. When
  Kruskal–Wallis does not reject (p ≥ alpha), no pair is called different: everyone is group 1.
- Friedman test, blocks = datasets, then Nemenyi post-hoc (scikit-posthocs' test, computed by
  ``nemenyi_friedman`` with a vectorised studentized-range tail), with average ranks
  (rank 1 = lowest MSE on a dataset) and the critical difference CD = q_α·√(k(k+1)/(6N)),
  q_α = studentized range quantile (1-α; k, ∞)/√2 (Demšar 2006). Needs ≥ 3 complete entries.
- Fewer than 2 complete entries, or MSE tied everywhere, give ``test_status = "not_enough"``
  with the reason; ranks are still given, groups are not.
- Uncertainty (``evaluator.scoring.uncertainty``): a 95 % dataset-bootstrap interval of each
  complete entry's mean normalized MSE and rank (``n_resamples``, ``seed``; reproducible), the
  skill 1 - MSE / MSE of ``reference_entry`` (the ``mean`` baseline) averaged over datasets with
  its interval, and the Wilcoxon signed-rank test of every pair on per-dataset MSE with Holm's
  correction and effect sizes (``wilcoxon``): pool-independent, beside Dunn and Nemenyi.

Heavy libraries (pandas, scipy, scikit-posthocs) are imported inside the functions, so this
module is cheap to import (the leaderboard imports it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy.special import ndtr

from evaluator.scoring.errors import ResultsTableError
from evaluator.scoring.uncertainty import (
    CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    PairTests,
    dataset_bootstrap,
    paired_tests,
    skill_scores,
)

DEFAULT_ALPHA = 0.05
REQUIRED_COLUMNS = ("entry", "dataset", "mse")


class PValueMatrix(BaseModel):
    """A symmetric matrix of adjusted p-values between entries (diagonal 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str
    labels: list[str]
    p_values: list[list[float]]

    def get(self, a: str, b: str) -> float:
        """Return the p-value between entries ``a`` and ``b``."""
        return self.p_values[self.labels.index(a)][self.labels.index(b)]


class KruskalResult(BaseModel):
    """The Kruskal–Wallis H test over entries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    statistic: float
    p_value: float
    significant: bool


class FriedmanResult(BaseModel):
    """Friedman test (blocks = datasets) with Nemenyi post-hoc and the critical difference."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    statistic: float
    p_value: float
    significant: bool
    n_datasets: int
    average_ranks: dict[str, float]
    q_alpha: float
    critical_difference: float
    nemenyi: PValueMatrix


class EntryStats(BaseModel):
    """One entry's summary: completeness, rank, significance group and aggregate metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entry: str
    complete: bool
    incomplete_reason: str | None = None
    n_datasets: int
    rank: int | None = None
    group: int | None = None
    mean_normalized_mse: float | None = None
    std_normalized_mse: float | None = None
    mean_mse: float | None = None
    mean_pcc_gene: float | None = None
    datasets_won: int | None = None
    mean_normalized_mse_low: float | None = None
    mean_normalized_mse_high: float | None = None
    rank_low: int | None = None
    rank_high: int | None = None
    skill: float | None = None
    skill_low: float | None = None
    skill_high: float | None = None


class BootstrapInfo(BaseModel):
    """How the ranking's intervals were resampled (enough to reproduce them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: Literal["datasets"] = "datasets"
    n_resamples: int
    seed: int
    confidence: float


class StatisticsReport(BaseModel):
    """Everything the leaderboard shows about a (track, release): ranks, groups and tests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    track: str | None = None
    release_id: str | None = None
    alpha: float
    datasets: list[str]
    entries: list[EntryStats]
    normalized_mse: dict[str, dict[str, float]]
    test_status: Literal["tested", "not_enough"]
    test_reason: str | None = None
    kruskal: KruskalResult | None = None
    dunn: PValueMatrix | None = None
    friedman: FriedmanResult | None = None
    friedman_reason: str | None = None
    bootstrap: BootstrapInfo | None = None
    skill_reference: str | None = None
    skill_reason: str | None = None
    wilcoxon: PairTests | None = None

    def ranked(self) -> list[EntryStats]:
        """Return the complete entries in rank order."""
        return [e for e in self.entries if e.complete]


def _to_frame(results: pd.DataFrame | Iterable[Mapping[str, Any]], source: str) -> pd.DataFrame:
    """Return the results as a DataFrame with checked columns and no duplicate (entry, dataset)."""
    frame = results.copy() if isinstance(results, pd.DataFrame) else pd.DataFrame(list(results))
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsTableError(
            source, f"columns {list(REQUIRED_COLUMNS)} (pcc_gene optional)",
            f"columns {[str(c) for c in frame.columns]}",
        )
    frame["entry"] = frame["entry"].astype(str)
    frame["dataset"] = frame["dataset"].astype(str)
    frame["mse"] = pd.to_numeric(frame["mse"], errors="coerce").astype(float)
    if "pcc_gene" in frame.columns:
        frame["pcc_gene"] = pd.to_numeric(frame["pcc_gene"], errors="coerce").astype(float)
    duplicated = frame.duplicated(["entry", "dataset"], keep=False)
    if duplicated.any():
        first = frame.loc[duplicated, ["entry", "dataset"]].iloc[0]
        raise ResultsTableError(
            source, "one row per (entry, dataset)",
            f"{int(duplicated.sum())} duplicated rows, e.g. ({first['entry']}, {first['dataset']})",
        )
    negative = frame["mse"] <= 0
    if negative.any():
        bad = frame.loc[negative].iloc[0]
        raise ResultsTableError(
            source, "positive MSE values",
            f"mse={bad['mse']} for ({bad['entry']}, {bad['dataset']})",
        )
    return frame


def _incomplete_reason(have: set[str], datasets: list[str], invalid: list[str]) -> str | None:
    """Describe which datasets an entry lacks, or None when it has them all."""
    missing = [d for d in datasets if d not in have]
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} of {len(datasets)} datasets: {', '.join(missing)}")
    if invalid:
        parts.append(f"no finite MSE on: {', '.join(invalid)}")
    return "; ".join(parts) or None


def dunn_bonferroni(groups: list[np.ndarray], labels: list[str]) -> PValueMatrix:
    """Run Dunn's test (tie-corrected) with Bonferroni adjustment between the given groups."""
    # why here: scikit-posthocs takes ~2 s to import (statsmodels); every process that opens the
    # store loads this module
    import scikit_posthocs as sp

    table = sp.posthoc_dunn([np.asarray(g, dtype=float) for g in groups], p_adjust="bonferroni")
    values = table.to_numpy(dtype=float)
    return PValueMatrix(
        method="dunn-bonferroni", labels=list(labels),
        p_values=[[float(v) for v in row] for row in values],
    )


def significance_groups(order: list[str], p_value: PValueMatrix, alpha: float) -> dict[str, int]:
    """Assign groups: each head (best left) takes every entry left with p ≥ alpha against it."""
    index = {label: i for i, label in enumerate(p_value.labels)}
    groups: dict[str, int] = {}
    remaining = list(order)
    group = 0
    while remaining:
        group += 1
        head = remaining[0]
        row = p_value.p_values[index[head]]
        members = [e for e in remaining if e == head or row[index[e]] >= alpha]
        for entry in members:
            groups[entry] = group
        remaining = [e for e in remaining if e not in groups]
    return groups


def critical_difference(k: int, n_datasets: int, alpha: float) -> tuple[float, float]:
    """Return (q_alpha, CD) of the Nemenyi test for k entries over n datasets (Demšar 2006).

    q_alpha solves studentized range sf(q; k, ∞) = alpha (``studentized_range_sf_inf``, Brent's
    method to 1e-13), divided by √2.
    """
    # why here: scipy.optimize loads ~200 modules; the CD diagram is the only user, and every
    # process that opens the store loads this module
    from scipy.optimize import brentq

    def excess(q: float) -> float:
        return float(studentized_range_sf_inf(np.array(q), k)) - alpha

    upper = 4.0
    while excess(upper) > 0.0:
        upper *= 2.0
    root = brentq(excess, 0.0, upper, xtol=1e-13, rtol=1e-13)
    q_alpha = float(root) / math.sqrt(2.0)
    return q_alpha, q_alpha * math.sqrt(k * (k + 1) / (6.0 * n_datasets))


# Trapezoid step for the studentized-range integral; see ``studentized_range_sf_inf``.
_SR_STEP = 0.1
# Grid points whose weight is below this fraction of the largest carry no p-value above ~1e-37.
_SR_WEIGHT_FLOOR = 1e-40
_SR_CHUNK = 256


def studentized_range_sf_inf(q: np.ndarray, k: int) -> np.ndarray:
    """Return P(Q > q) for the studentized range of k normal means with infinite df (vectorised).

    sf(q) = k ∫ φ(z) [Φ(z)^(k-1) - (Φ(z) - Φ(z-q))^(k-1)] dz, the complement of the df = ∞ form
    in Lund & Lund (1983), computed as k ∫ φ Φ^(k-1) (1 - (1 - Φ(z-q)/Φ(z))^(k-1)) dz so that small
    p-values keep their relative precision. The integrand is smooth and decays like a Gaussian,
    so the trapezoid rule on a uniform grid (step 0.1) is spectrally accurate: ~1e-14 relative
    against 40-digit quadrature (mpmath) for k = 3..500 and q up to 17. scipy's
    ``studentized_range.sf(q, k, inf)`` is 1 - cdf with one adaptive quadrature per value
    (absolute tolerance ~1e-11): the same numbers, ~1 ms each instead of ~4 µs.
    """
    q = np.asarray(q, dtype=float)
    if q.size == 0:
        return np.zeros(q.shape)
    # Φ^(k-1) kills the lower tail; the upper end reaches past q/2, where a tiny sf has its mass.
    z = np.arange(-9.0, max(9.0, float(q.max()) / 2.0 + 8.0) + _SR_STEP, _SR_STEP)
    a = ndtr(z)
    with np.errstate(divide="ignore", under="ignore"):
        weight = k * np.exp(-0.5 * z * z + (k - 1) * np.log(a)) / math.sqrt(2.0 * math.pi)
    keep = weight > _SR_WEIGHT_FLOOR * weight.max()
    z, a, weight = z[keep], a[keep], weight[keep] * _SR_STEP
    flat = q.reshape(-1)
    out = np.empty(flat.size)
    for start in range(0, flat.size, _SR_CHUNK):
        chunk = flat[start : start + _SR_CHUNK, None]
        ratio = np.minimum(ndtr(z - chunk) / a, 1.0)
        with np.errstate(divide="ignore"):
            inner = -np.expm1((k - 1) * np.log1p(-ratio))
        out[start : start + _SR_CHUNK] = inner @ weight
    return np.clip(out, 0.0, 1.0).reshape(q.shape)


def nemenyi_friedman(matrix: np.ndarray) -> np.ndarray:
    """Return the Nemenyi post-hoc p-values after Friedman for a (datasets x entries) matrix.

    The same test as scikit-posthocs' ``posthoc_nemenyi_friedman``: average ranks R over the
    datasets (ties averaged), q = |R_i - R_j| / √(k(k+1)/(6N)), p = studentized range sf(q√2;
    k, ∞) (Demšar 2006); the diagonal is 1. All pairs in one vectorised call; pairs with equal q
    share one evaluation.
    """
    # why here: scipy.stats takes ~0.5 s to import (see dunn_bonferroni)
    from scipy.stats import rankdata

    n, k = matrix.shape
    mean_ranks = rankdata(matrix, axis=1, method="average").mean(axis=0)
    upper = np.triu_indices(k, 1)
    differences = np.abs(mean_ranks[upper[0]] - mean_ranks[upper[1]])
    q_values = differences / np.sqrt(k * (k + 1.0) / (6.0 * n))
    distinct, inverse = np.unique(q_values * np.sqrt(2.0), return_inverse=True)
    p_values = studentized_range_sf_inf(distinct, k)[inverse]
    out = np.ones((k, k))
    out[upper] = p_values
    out[upper[1], upper[0]] = p_values
    return out


def _friedman(
    matrix: np.ndarray, labels: list[str], alpha: float
) -> tuple[FriedmanResult | None, str | None]:
    """Run Friedman + Nemenyi on a (datasets x entries) MSE matrix, or say why not."""
    n_datasets, k = matrix.shape
    if k < 3:
        return None, f"Friedman needs at least 3 complete entries, found {k}"
    if n_datasets < 2:
        return None, f"Friedman needs at least 2 datasets, found {n_datasets}"
    if bool((np.ptp(matrix, axis=1) == 0).all()):
        return None, "every dataset has all entries tied: nothing to rank"
    # why here: scipy.stats is slow to import (see dunn_bonferroni)
    from scipy.stats import friedmanchisquare, rankdata

    statistic, p_value = friedmanchisquare(*matrix.T)
    nemenyi = nemenyi_friedman(matrix)
    average = rankdata(matrix, axis=1).mean(axis=0)
    q_alpha, cd = critical_difference(k, n_datasets, alpha)
    return FriedmanResult(
        statistic=float(statistic), p_value=float(p_value), significant=bool(p_value < alpha),
        n_datasets=n_datasets,
        average_ranks={label: float(r) for label, r in zip(labels, average, strict=True)},
        q_alpha=q_alpha, critical_difference=cd,
        nemenyi=PValueMatrix(
            method="nemenyi-friedman", labels=list(labels),
            p_values=[[float(v) for v in row] for row in nemenyi],
        ),
    ), None


def compute_statistics(
    results: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    datasets: Iterable[str] | None = None,
    alpha: float = DEFAULT_ALPHA,
    track: str | None = None,
    release_id: str | None = None,
    source: str = "<table>",
    friedman: bool = True,
    reference_entry: str | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    uncertainty: bool = True,
) -> StatisticsReport:
    """Rank entries by mean normalised MSE and test their differences (see module docstring).

    ``reference_entry`` names the skill score's reference (the ``mean`` baseline); with
    ``uncertainty=False`` no bootstrap, skill or Wilcoxon test is computed. Raises
    ``ResultsTableError`` for missing columns, duplicate rows or non-positive MSE.
    """
    if n_resamples < 1:
        raise ResultsTableError(source, "n_resamples >= 1", str(n_resamples))
    if not 0.0 < alpha < 1.0:
        raise ResultsTableError(source, "alpha in (0, 1)", str(alpha))
    frame = _to_frame(results, source)
    dataset_list = sorted(set(datasets)) if datasets is not None else sorted(set(frame["dataset"]))
    all_entries = sorted(set(frame["entry"]))
    frame = frame[frame["dataset"].isin(dataset_list)]
    mse = frame.pivot(index="dataset", columns="entry", values="mse").reindex(
        index=dataset_list, columns=all_entries
    )
    pcc = None
    if "pcc_gene" in frame.columns:
        pcc = frame.pivot(index="dataset", columns="entry", values="pcc_gene").reindex(
            index=dataset_list, columns=all_entries
        )
    have = frame.groupby("entry")["dataset"].apply(set).to_dict()

    complete: list[str] = []
    incomplete: list[EntryStats] = []
    for entry in all_entries:
        column = mse[entry].to_numpy()
        invalid = [d for d, v in zip(dataset_list, column, strict=True)
                   if d in have.get(entry, set()) and not np.isfinite(v)]
        why = _incomplete_reason(have.get(entry, set()), dataset_list, invalid)
        if why is None and dataset_list:
            complete.append(entry)
        else:
            incomplete.append(EntryStats(
                entry=entry, complete=False,
                incomplete_reason=why or "the release has no datasets",
                n_datasets=int(np.isfinite(column).sum()),
            ))

    matrix = mse[complete].to_numpy(dtype=float) if complete else np.zeros((0, 0))
    summaries: dict[str, dict[str, Any]] = {}
    normalized: dict[str, dict[str, float]] = {}
    order: list[str] = []
    if complete:
        best = matrix.min(axis=1, keepdims=True)
        norm = matrix / best
        mean_norm = norm.mean(axis=0)
        std_norm = norm.std(axis=0, ddof=1) if len(dataset_list) > 1 else np.zeros(len(complete))
        won = (matrix == best).sum(axis=0)
        for i, entry in enumerate(complete):
            pcc_mean = None
            if pcc is not None:
                values = pcc[entry].to_numpy(dtype=float)
                values = values[np.isfinite(values)]
                pcc_mean = float(values.mean()) if values.size else None
            summaries[entry] = dict(
                mean_normalized_mse=float(mean_norm[i]), std_normalized_mse=float(std_norm[i]),
                mean_mse=float(matrix[:, i].mean()), mean_pcc_gene=pcc_mean,
                datasets_won=int(won[i]),
            )
            normalized[entry] = {d: float(v) for d, v in zip(dataset_list, norm[:, i], strict=True)}
        order = sorted(complete, key=lambda e: (summaries[e]["mean_normalized_mse"], e))
        means = np.array([summaries[e]["mean_normalized_mse"] for e in order])
        for entry in order:
            # Ties (to rounding) share the better rank.
            better = means < summaries[entry]["mean_normalized_mse"] * (1 - 1e-12)
            summaries[entry]["rank"] = int(better.sum()) + 1

    bootstrap_info: BootstrapInfo | None = None
    skill_reason: str | None = None
    wilcoxon: PairTests | None = None
    if complete and uncertainty:
        skill = None
        if reference_entry is None:
            skill_reason = "no mean baseline in this view"
        elif reference_entry not in complete:
            skill_reason = f"the mean baseline {reference_entry} is not complete in this view"
        else:
            skill = skill_scores(matrix, matrix[:, complete.index(reference_entry)])
        boot = dataset_bootstrap(norm, skill=skill, n_resamples=n_resamples, seed=seed,
                                 confidence=CONFIDENCE)
        bootstrap_info = BootstrapInfo(n_resamples=n_resamples, seed=seed,
                                       confidence=CONFIDENCE)
        for i, entry in enumerate(complete):
            summaries[entry].update(
                mean_normalized_mse_low=float(boot.mean_low[i]),
                mean_normalized_mse_high=float(boot.mean_high[i]),
                rank_low=int(boot.rank_low[i]), rank_high=int(boot.rank_high[i]))
            if boot.skill is not None and boot.skill_low is not None \
                    and boot.skill_high is not None:
                summaries[entry].update(skill=float(boot.skill[i]),
                                        skill_low=float(boot.skill_low[i]),
                                        skill_high=float(boot.skill_high[i]))
        if len(complete) >= 2:
            positions = [complete.index(e) for e in order]
            wilcoxon = paired_tests(matrix[:, positions], norm[:, positions], order, alpha=alpha)

    status: Literal["tested", "not_enough"] = "tested"
    reason: str | None = None
    kruskal_result = dunn = friedman_result = None
    friedman_reason: str | None = None
    groups: dict[str, int] = {}
    if len(complete) < 2:
        status, reason = "not_enough", f"need at least 2 complete entries, found {len(complete)}"
    elif np.ptp(matrix) == 0:
        status, reason = "not_enough", "every complete entry has the same MSE on every dataset"
    else:
        # why here: scipy.stats is slow to import (see dunn_bonferroni)
        from scipy.stats import kruskal

        columns = [matrix[:, complete.index(e)] for e in order]
        statistic, p_value = kruskal(*columns)
        kruskal_result = KruskalResult(
            statistic=float(statistic), p_value=float(p_value), significant=bool(p_value < alpha)
        )
        dunn = dunn_bonferroni(columns, order)
        if kruskal_result.significant:
            groups = significance_groups(order, dunn, alpha)
        else:
            groups = dict.fromkeys(order, 1)
        if friedman:
            ordered = np.column_stack(columns)
            friedman_result, friedman_reason = _friedman(ordered, order, alpha)
        else:
            friedman_reason = "not requested"
    if status == "not_enough":
        friedman_reason = reason

    ranked = [
        EntryStats(entry=e, complete=True, n_datasets=len(dataset_list), group=groups.get(e),
                   **summaries[e])
        for e in order
    ]
    return StatisticsReport(
        track=track, release_id=release_id, alpha=alpha, datasets=dataset_list,
        entries=ranked + incomplete, normalized_mse=normalized, test_status=status,
        test_reason=reason, kruskal=kruskal_result, dunn=dunn, friedman=friedman_result,
        friedman_reason=friedman_reason, bootstrap=bootstrap_info,
        skill_reference=reference_entry if skill_reason is None and bootstrap_info else None,
        skill_reason=skill_reason, wilcoxon=wilcoxon,
    )
