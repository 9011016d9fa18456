"""Masked regression metrics of a prediction against the truth: SpaRED's ``get_metrics`` set.

Definitions (entries with mask False never count; t = truth, p = prediction; float64 sums):

- ``mse`` = mean of (t-p)² and ``mae`` = mean of |t-p| over all measured entries.
- ``pcc_gene``: for each gene, Pearson's r between t and p over its measured spots; averaged
  over genes with at least one measured spot (genes with none are skipped). A gene whose
  prediction or truth is constant on its measured spots (a single measured spot included) has no
  defined r: it gets 0 and still counts in the mean, as SpaRED's cosine-similarity formula gives
  (SpaRED itself reports NaN for the whole metric when any prediction column is constant; we do
  not). ``pcc_patch`` is the same per spot over its measured genes.
- ``r2_gene``: for each gene with ≥ 2 measured spots, 1 - Σ(t-p)² / Σ(t-t̄)² over them (sklearn's
  ``r2_score`` on the masked column); averaged over those genes. Genes with a single measured
  value are skipped (SpaRED does the same); genes whose measured truth is constant have no
  defined R2 and are skipped too (SpaRED would average in -inf or NaN). ``r2_patch`` per spot.
- A mean over an empty set is ``None`` (stated, never NaN).

The straightforward reference these must equal is, per column j: take ``t[mask[:, j], j]`` and
``p[mask[:, j], j]``, then apply the textbook formulas above (see ``tests/scoring`` and
``tests/benchmarks/bench_scoring.py``). Here they come from sufficient statistics computed in
chunks of rows (``evaluator.scoring._kernels``); columns whose one-pass variance is
ill-conditioned, and rows that look constant, are recomputed exactly by two passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import numpy as np
from pydantic import BaseModel, ConfigDict

from evaluator.scoring._kernels import exact_centered, sufficient_stats
from evaluator.scoring.errors import MetricInputError

# One-pass Σx² - (Σx)²/n is trusted when it keeps at least this fraction of Σx² (≥ 6 of the 16
# float64 digits survive the cancellation); below it the column is recomputed by two passes.
_COLUMN_CONDITION_MIN = 1e-6
# Rows are centred exactly already; a row this close to constant is checked for exact constancy.
_ROW_CONSTANT_CHECK = 1e-12


class MetricSet(BaseModel):
    """The six SpaRED metrics of one (truth, prediction, mask) triple, with the counts behind them.

    ``constant_genes``: genes with ≥ 2 measured spots whose prediction is constant on them
    (PCC 0). ``constant_truth_genes``: genes with ≥ 2 measured spots whose truth is constant
    (PCC 0, R2 skipped). ``single_value_genes``: exactly one measured spot (PCC 0, R2 skipped).
    ``unmeasured_genes``: no measured spot (skipped everywhere). Same for spots, over genes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mse: float
    mae: float
    pcc_gene: float
    pcc_patch: float
    r2_gene: float | None
    r2_patch: float | None
    n_spots: int
    n_genes: int
    n_measured: int
    constant_genes: int
    constant_truth_genes: int
    single_value_genes: int
    unmeasured_genes: int
    constant_spots: int
    constant_truth_spots: int
    single_value_spots: int
    unmeasured_spots: int


@dataclass(frozen=True)
class MetricDetail:
    """Per-gene and per-spot values behind a ``MetricSet`` (NaN where a value is undefined)."""

    metrics: MetricSet
    gene_n: np.ndarray
    gene_pcc: np.ndarray
    gene_r2: np.ndarray
    gene_mse: np.ndarray
    gene_mae: np.ndarray
    spot_n: np.ndarray
    spot_pcc: np.ndarray
    spot_r2: np.ndarray
    spot_mse: np.ndarray


def _as_matrix(name: str, value: np.ndarray) -> np.ndarray:
    """Return ``value`` as a C-contiguous 2-D float32/float64 array or raise."""
    array = np.asarray(value)
    if array.ndim != 2:
        raise MetricInputError(name, "a 2-D array (spots x genes)", f"{array.ndim}-D {array.shape}")
    if array.dtype not in (np.float32, np.float64):
        raise MetricInputError(name, "dtype float32 or float64", f"dtype {array.dtype}")
    return np.ascontiguousarray(array)


def _checked_inputs(
    truth: np.ndarray, pred: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (truth, prediction, mask) as C-contiguous arrays of one shape, or raise."""
    t = _as_matrix("truth", truth)
    p = _as_matrix("prediction", pred)
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise MetricInputError("mask", "dtype bool (True = measured)", f"dtype {m.dtype}")
    m = np.ascontiguousarray(m)
    if p.shape != t.shape or m.shape != t.shape:
        raise MetricInputError(
            "shapes", f"truth, prediction and mask of one shape {t.shape}",
            f"prediction {p.shape}, mask {m.shape}",
        )
    return t, p, m


def _raise_non_finite(t: np.ndarray, p: np.ndarray, m: np.ndarray) -> NoReturn:
    """Raise ``MetricInputError`` naming the first non-finite measured entry (or overflow)."""
    bad_t = m & ~np.isfinite(t)
    which, bad = ("truth", bad_t) if bad_t.any() else ("prediction", m & ~np.isfinite(p))
    first = tuple(int(x) for x in np.argwhere(bad)[0]) if bad.any() else "overflow"
    raise MetricInputError(
        which, "finite values on measured entries",
        f"{int(bad.sum())} non-finite, first at (spot, gene) {first}",
    )


def _pearson(
    n: np.ndarray, stt: np.ndarray, spp: np.ndarray, stp: np.ndarray,
    t_const: np.ndarray, p_const: np.ndarray,
) -> np.ndarray:
    """Return r per unit: NaN with no measured entry, 0 when either side is constant."""
    degenerate = t_const | p_const | (n == 1)
    ok = (n > 0) & ~degenerate
    denom = np.sqrt(np.where(ok, stt * spp, 1.0))
    r = np.where(ok, stp / np.where(denom > 0, denom, 1.0), 0.0)
    r = np.clip(r, -1.0, 1.0)
    return np.where(n > 0, r, np.nan)


def _r2(n: np.ndarray, sdd: np.ndarray, stt: np.ndarray, t_const: np.ndarray) -> np.ndarray:
    """Return 1 - SS_res/SS_tot per unit: NaN with fewer than 2 entries or constant truth."""
    ok = (n >= 2) & ~t_const & (stt > 0)
    return np.where(ok, 1.0 - sdd / np.where(ok, stt, 1.0), np.nan)


def _mean_or_none(values: np.ndarray) -> float | None:
    """Return the mean of the finite values, or None if there is none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def _detailed(t: np.ndarray, p: np.ndarray, m: np.ndarray) -> MetricDetail:
    """Compute the metric set and per-unit detail from the sufficient statistics."""
    n_spots, n_genes = t.shape
    stats = sufficient_stats(t, p, m)
    col, row = stats.col, stats.row
    n_measured = int(col[0].sum())
    if n_measured == 0:
        raise MetricInputError("mask", "at least one measured (True) entry", "none")
    if not (np.isfinite(col).all() and np.isfinite(row).all()):
        _raise_non_finite(t, p, m)

    # Genes: undo the shift-free parts of the one-pass formulas, then fix ill-conditioned columns.
    g_n = col[0]
    g_safe = np.maximum(g_n, 1.0)
    g_stt = np.maximum(col[3] - col[1] ** 2 / g_safe, 0.0)
    g_spp = np.maximum(col[4] - col[2] ** 2 / g_safe, 0.0)
    g_stp = col[5] - col[1] * col[2] / g_safe
    g_t_const = np.zeros(n_genes, dtype=bool)
    g_p_const = np.zeros(n_genes, dtype=bool)
    shaky = (g_n > 0) & (
        (g_stt <= _COLUMN_CONDITION_MIN * col[3]) | (g_spp <= _COLUMN_CONDITION_MIN * col[4])
    )
    if shaky.any():
        cols = np.flatnonzero(shaky)
        stt, spp, stp, tc, pc = exact_centered(t[:, cols], p[:, cols], m[:, cols], axis=0)
        g_stt[cols], g_spp[cols], g_stp[cols] = stt, spp, stp
        g_t_const[cols], g_p_const[cols] = tc, pc

    s_n = row[0]
    s_safe = np.maximum(s_n, 1.0)
    s_stt, s_spp, s_stp = row[3].copy(), row[4].copy(), row[5].copy()
    s_t_const = np.zeros(n_spots, dtype=bool)
    s_p_const = np.zeros(n_spots, dtype=bool)
    near_const = (s_n > 0) & (
        (s_stt <= _ROW_CONSTANT_CHECK * row[1] ** 2 / s_safe)
        | (s_spp <= _ROW_CONSTANT_CHECK * row[2] ** 2 / s_safe)
    )
    if near_const.any():
        rows = np.flatnonzero(near_const)
        stt, spp, stp, tc, pc = exact_centered(t[rows], p[rows], m[rows], axis=1)
        s_stt[rows], s_spp[rows], s_stp[rows] = stt, spp, stp
        s_t_const[rows], s_p_const[rows] = tc, pc

    gene_pcc = _pearson(g_n, g_stt, g_spp, g_stp, g_t_const, g_p_const)
    spot_pcc = _pearson(s_n, s_stt, s_spp, s_stp, s_t_const, s_p_const)
    gene_r2 = _r2(g_n, col[6], g_stt, g_t_const)
    spot_r2 = _r2(s_n, row[6], s_stt, s_t_const)
    with np.errstate(invalid="ignore", divide="ignore"):
        gene_mse = np.where(g_n > 0, col[6] / g_safe, np.nan)
        gene_mae = np.where(g_n > 0, col[7] / g_safe, np.nan)
        spot_mse = np.where(s_n > 0, row[6] / s_safe, np.nan)

    pcc_gene = _mean_or_none(gene_pcc)
    pcc_patch = _mean_or_none(spot_pcc)
    if pcc_gene is None or pcc_patch is None:  # unreachable once n_measured > 0
        raise MetricInputError("mask", "at least one measured entry", "none")
    metrics = MetricSet(
        mse=float(col[6].sum() / n_measured),
        mae=float(col[7].sum() / n_measured),
        pcc_gene=pcc_gene,
        pcc_patch=pcc_patch,
        r2_gene=_mean_or_none(gene_r2),
        r2_patch=_mean_or_none(spot_r2),
        n_spots=n_spots,
        n_genes=n_genes,
        n_measured=n_measured,
        constant_genes=int(((g_n >= 2) & g_p_const).sum()),
        constant_truth_genes=int(((g_n >= 2) & g_t_const).sum()),
        single_value_genes=int((g_n == 1).sum()),
        unmeasured_genes=int((g_n == 0).sum()),
        constant_spots=int(((s_n >= 2) & s_p_const).sum()),
        constant_truth_spots=int(((s_n >= 2) & s_t_const).sum()),
        single_value_spots=int((s_n == 1).sum()),
        unmeasured_spots=int((s_n == 0).sum()),
    )
    return MetricDetail(
        metrics=metrics,
        gene_n=g_n.astype(np.int64), gene_pcc=gene_pcc, gene_r2=gene_r2,
        gene_mse=gene_mse, gene_mae=gene_mae,
        spot_n=s_n.astype(np.int64), spot_pcc=spot_pcc, spot_r2=spot_r2, spot_mse=spot_mse,
    )


def compute_metrics_detailed(
    truth: np.ndarray, pred: np.ndarray, mask: np.ndarray
) -> MetricDetail:
    """Compute the metric set and its per-gene / per-spot detail on mask-true entries.

    Raises ``MetricInputError`` when shapes differ, the mask is not boolean, nothing is measured,
    or a measured entry of truth or prediction is not finite.
    """
    return _detailed(*_checked_inputs(truth, pred, mask))


def compute_metrics(truth: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> MetricSet:
    """Compute MSE, MAE, PCC-Gene, PCC-Patch, R2-Gene, R2-Patch on mask-true entries.

    See the module docstring for the exact definitions; raises ``MetricInputError``.
    """
    return compute_metrics_detailed(truth, pred, mask).metrics
