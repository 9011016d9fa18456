"""Masked statistics of (truth, prediction) in one fused pass: a numba kernel, or numpy.

The numba engine (``fused_metrics``) reads the three arrays once and returns the metric
aggregates directly: per spot it finishes PCC and R2 while the row sits in L1 cache; per gene it
accumulates, with shifts ``kt[j]``, ``kp[j]`` (rough column means from a strided sample),
n, Σ(t-kt), Σ(p-kp), Σ(t-kt)², Σ(p-kp)², Σ(t-kt)(p-kp), Σ(t-p)², Σ|t-p|, and finishes the genes
after the pass. The shifts keep the one-pass variance formula well conditioned; Pearson and
SS_tot are shift-invariant, and ill-conditioned columns are recomputed exactly by two passes.

The numpy engine (``sufficient_stats``) returns the same sums as arrays (``SufficientStats``):
- per gene (column) j over measured spots i (mask True): the eight shifted sums above;
- per spot (row) i over measured genes: n, Σt, Σp and the *centred* sums Σ(t-t̄)², Σ(p-p̄)²,
  Σ(t-t̄)(p-p̄) (two passes over a row), and Σ(t-p)²;
and ``evaluator.scoring.metrics`` finishes them with the same formulas.

Unmeasured entries never enter an arithmetic expression (they are selected away, not multiplied
by zero), so NaN there is harmless. The numba kernel is compiled on first use and cached on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Engine = Literal["auto", "numba", "numpy"]

_NUMPY_CHUNK_ROWS = 1024


@dataclass(frozen=True)
class SufficientStats:
    """Column (gene) and row (spot) sums of one (truth, prediction, mask) triple."""

    col: np.ndarray  # (8, n_genes): n, st, sp, stt, spp, stp, sdd, sad (shifted by kt, kp)
    row: np.ndarray  # (7, n_spots): n, st, sp, ctt, cpp, ctp, sdd (centred on row means)
    kt: np.ndarray  # (n_genes,) truth shift
    kp: np.ndarray  # (n_genes,) prediction shift


# Layout of the aggregate vector ``fused_metrics`` returns. Each of the gene and spot blocks holds
# Σ finite PCC, their count, Σ finite R2, their count, then the counts of constant-prediction
# units, constant-truth units, single-value units and unmeasured units.
AGG_N_MEASURED = 0
AGG_SDD = 1  # Σ(t-p)² over measured entries
AGG_SAD = 2  # Σ|t-p| over measured entries
AGG_GENE = 3
AGG_SPOT = 11
AGG_FINITE = 19  # 1.0 when every sum is finite, else 0.0 (a measured NaN/inf, or overflow)
AGG_TOUCHED = 20  # a byte sum of no meaning
AGG_SIZE = 21

FusedResult = tuple[np.ndarray, np.ndarray, np.ndarray]

# Above this many bytes (truth + prediction + mask) the arrays are taken to come from DRAM, and
# the kernel touches each block of rows (about PREFETCH_BLOCK_BYTES) before computing on it. On
# the development VM this took 43,804 x 128 from ~2.3x to ~1.5x the read floor and 15,684 x 128
# from ~2.2x to ~1.5x, and cost ~5 % on arrays of 8 MB or less (already in cache).
PREFETCH_MIN_BYTES = 12 << 20
PREFETCH_BLOCK_BYTES = 128 << 10


def fused_metrics(
    truth: np.ndarray, pred: np.ndarray, mask: np.ndarray, *, detail: bool,
    column_condition_min: float, row_constant_check: float,
) -> FusedResult:
    """Compute the metric aggregates (and per-unit values) in one compiled pass (numba).

    Returns ``(agg, gene, spot)``: ``agg`` laid out by the ``AGG_*`` indices; ``gene`` (5,
    n_genes) = n, PCC, R2, MSE, MAE; ``spot`` (4, n_spots) = n, PCC, R2, MSE when ``detail``,
    else (4, 0). NaN marks an undefined per-unit value, as the numpy engine does. Inputs must be
    C-contiguous 2-D arrays of one shape, ``mask`` boolean; when ``agg[AGG_FINITE]`` is 0 the
    other values are meaningless.
    """
    n_rows = truth.shape[0]
    row_bytes = truth.shape[1] * (truth.itemsize + pred.itemsize + mask.itemsize)
    big = n_rows * row_bytes > PREFETCH_MIN_BYTES
    block_rows = max(1, PREFETCH_BLOCK_BYTES // max(row_bytes, 1)) if big else 0
    touch = tuple(a.reshape(-1).view(np.uint8) for a in (truth, pred, mask))
    from evaluator.scoring._numba_kernels import fused

    return fused(  # type: ignore[no-any-return]
        truth, pred, mask, detail, column_condition_min, row_constant_check, touch, block_rows
    )


def numba_available() -> bool:
    """Return True when numba can be imported (the fast engine)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _column_shifts(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Return rough masked column means from a strided sample of at most 64 rows.

    A shift within a few standard deviations of the mean is all the conditioning needs; columns
    it does not rescue are recomputed exactly by the caller.
    """
    step = max(1, -(-values.shape[0] // 64))
    sample_mask = mask[::step]
    count = sample_mask.sum(axis=0)
    total = np.where(sample_mask, values[::step], 0).sum(axis=0, dtype=np.float64)
    shift = total / np.maximum(count, 1)
    return np.where(np.isfinite(shift), shift, 0.0)


def _numpy_stats(
    t: np.ndarray, p: np.ndarray, m: np.ndarray, kt: np.ndarray, kp: np.ndarray,
    col: np.ndarray, row: np.ndarray,
) -> None:
    """Fill ``col`` and ``row`` like the numba kernel, with vectorised numpy over row chunks."""
    for start in range(0, t.shape[0], _NUMPY_CHUNK_ROWS):
        stop = min(t.shape[0], start + _NUMPY_CHUNK_ROWS)
        mc = m[start:stop]
        tc = np.where(mc, t[start:stop].astype(np.float64), 0.0)
        pc = np.where(mc, p[start:stop].astype(np.float64), 0.0)
        ac = np.where(mc, tc - kt, 0.0)
        bc = np.where(mc, pc - kp, 0.0)
        d = tc - pc
        dd = d * d
        col[0] += mc.sum(axis=0)
        col[1] += ac.sum(axis=0)
        col[2] += bc.sum(axis=0)
        col[3] += np.einsum("ij,ij->j", ac, ac)
        col[4] += np.einsum("ij,ij->j", bc, bc)
        col[5] += np.einsum("ij,ij->j", ac, bc)
        col[6] += dd.sum(axis=0)
        col[7] += np.abs(d).sum(axis=0)
        rn = mc.sum(axis=1).astype(np.float64)
        rt = tc.sum(axis=1)
        rp = pc.sum(axis=1)
        safe = np.maximum(rn, 1.0)
        ar = np.where(mc, tc - (rt / safe)[:, None], 0.0)
        br = np.where(mc, pc - (rp / safe)[:, None], 0.0)
        row[0, start:stop] = rn
        row[1, start:stop] = rt
        row[2, start:stop] = rp
        row[3, start:stop] = np.einsum("ij,ij->i", ar, ar)
        row[4, start:stop] = np.einsum("ij,ij->i", br, br)
        row[5, start:stop] = np.einsum("ij,ij->i", ar, br)
        row[6, start:stop] = dd.sum(axis=1)


def sufficient_stats(truth: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> SufficientStats:
    """Compute column and row sufficient statistics with vectorised numpy (the fallback engine).

    Inputs must be C-contiguous 2-D arrays of one shape; ``mask`` boolean.
    """
    n_rows, n_cols = truth.shape
    kt = _column_shifts(truth, mask)
    kp = _column_shifts(pred, mask)
    col = np.zeros((8, n_cols))
    row = np.zeros((7, n_rows))
    _numpy_stats(truth, pred, mask, kt, kp, col, row)
    return SufficientStats(col=col, row=row, kt=kt, kp=kp)


def exact_centered(
    t: np.ndarray, p: np.ndarray, m: np.ndarray, axis: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (Σ(t-t̄)², Σ(p-p̄)², Σ(t-t̄)(p-p̄), truth constant, prediction constant) along axis.

    Two passes in float64 over a (small) subset; "constant" compares the masked max and min
    exactly, so it is true for a single measured value and false for no measured value.
    """
    t64 = np.where(m, t.astype(np.float64), 0.0)
    p64 = np.where(m, p.astype(np.float64), 0.0)
    n = m.sum(axis=axis, keepdims=True)
    safe = np.maximum(n, 1)
    ac = np.where(m, t64 - t64.sum(axis=axis, keepdims=True) / safe, 0.0)
    bc = np.where(m, p64 - p64.sum(axis=axis, keepdims=True) / safe, 0.0)
    stt = (ac * ac).sum(axis=axis)
    spp = (bc * bc).sum(axis=axis)
    stp = (ac * bc).sum(axis=axis)
    has = n.squeeze(axis) > 0

    def constant(x: np.ndarray) -> np.ndarray:
        hi = np.where(m, x, -np.inf).max(axis=axis)
        lo = np.where(m, x, np.inf).min(axis=axis)
        return has & (hi == lo)

    return stt, spp, stp, constant(t64), constant(p64)
