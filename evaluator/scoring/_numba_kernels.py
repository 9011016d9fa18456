"""The fused numba metrics kernel (see ``evaluator.scoring._kernels``); imports numba.

Imported lazily by ``_kernels.fused_metrics``, so that importing the scoring package stays cheap.
The jitted functions live at module level, not in a closure: numba keys its on-disk cache on the
pickled closure cells, and a captured dispatcher pickles differently in every process, which
would recompile the kernel on every start.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from evaluator.scoring._kernels import (
    AGG_FINITE,
    AGG_GENE,
    AGG_N_MEASURED,
    AGG_SAD,
    AGG_SDD,
    AGG_SIZE,
    AGG_SPOT,
    AGG_TOUCHED,
)


# Per-unit formulas: compiled without fastmath, so they round like the numpy engine even when
# inlined into the fastmath loop of ``row_pass``.
@numba.njit(nogil=True, cache=True)
def pearson(n: Any, stt: Any, spp: Any, stp: Any, t_const: Any, p_const: Any) -> Any:
    """Return Pearson's r of one unit: NaN with no entry, 0 when a side is constant or n is 1."""
    if n <= 0.0:
        return np.nan
    if t_const or p_const or n == 1.0:
        return 0.0
    denom = np.sqrt(stt * spp)
    r = stp / (denom if denom > 0.0 else 1.0)
    return 1.0 if r > 1.0 else (-1.0 if r < -1.0 else r)


@numba.njit(nogil=True, cache=True)
def r2(n: Any, sdd: Any, stt: Any, t_const: Any) -> Any:
    """Return 1 - SS_res/SS_tot of one unit: NaN with fewer than 2 entries or constant truth."""
    if n >= 2.0 and not t_const and stt > 0.0:
        return 1.0 - sdd / stt
    return np.nan


@numba.njit(nogil=True, cache=True)
def tally(agg: Any, base: int, n: Any, pcc: Any, r2v: Any, t_const: Any, p_const: Any) -> None:
    """Add one unit to the aggregate block at ``base`` (layout in ``_kernels``)."""
    if np.isfinite(pcc):
        agg[base] += pcc
        agg[base + 1] += 1.0
    if np.isfinite(r2v):
        agg[base + 2] += r2v
        agg[base + 3] += 1.0
    if n >= 2.0 and p_const:
        agg[base + 4] += 1.0
    if n >= 2.0 and t_const:
        agg[base + 5] += 1.0
    if n == 1.0:
        agg[base + 6] += 1.0
    if n == 0.0:
        agg[base + 7] += 1.0


@numba.njit(nogil=True, cache=True)
def all_finite(a: Any, b: Any, c: Any, d: Any, e: Any, f: Any, g: Any) -> bool:
    """Return True when all seven values are finite."""
    return (np.isfinite(a) and np.isfinite(b) and np.isfinite(c) and np.isfinite(d)
            and np.isfinite(e) and np.isfinite(f) and np.isfinite(g))


@numba.njit(nogil=True, cache=True)
def exact_column(t: Any, p: Any, m: Any, j: int) -> Any:
    """Two-pass centred sums and exact constancy of column j (as ``exact_centered``)."""
    n = 0.0
    st = 0.0
    sp = 0.0
    t_hi = -np.inf
    t_lo = np.inf
    p_hi = -np.inf
    p_lo = np.inf
    for i in range(t.shape[0]):
        if m[i, j]:
            a = np.float64(t[i, j])
            b = np.float64(p[i, j])
            n += 1.0
            st += a
            sp += b
            t_hi = max(t_hi, a)
            t_lo = min(t_lo, a)
            p_hi = max(p_hi, b)
            p_lo = min(p_lo, b)
    safe = max(n, 1.0)
    mt = st / safe
    mp = sp / safe
    stt = 0.0
    spp = 0.0
    stp = 0.0
    for i in range(t.shape[0]):
        if m[i, j]:
            ac = np.float64(t[i, j]) - mt
            bc = np.float64(p[i, j]) - mp
            stt += ac * ac
            spp += bc * bc
            stp += ac * bc
    return stt, spp, stp, n > 0.0 and t_hi == t_lo, n > 0.0 and p_hi == p_lo


@numba.njit(nogil=True, cache=True)
def column_shifts(t: Any, p: Any, m: Any) -> Any:
    """Masked column means over a strided sample of at most 64 rows (0 where not finite)."""
    n_rows, n_cols = t.shape
    step = max(1, -(-n_rows // 64))
    kt = np.zeros(n_cols)
    kp = np.zeros(n_cols)
    kn = np.zeros(n_cols)
    for i in range(0, n_rows, step):
        for j in range(n_cols):
            if m[i, j]:
                kn[j] += 1.0
                kt[j] += np.float64(t[i, j])
                kp[j] += np.float64(p[i, j])
    for j in range(n_cols):
        safe = max(kn[j], 1.0)
        a = kt[j] / safe
        b = kp[j] / safe
        kt[j] = a if np.isfinite(a) else 0.0
        kp[j] = b if np.isfinite(b) else 0.0
    return kt, kp


# reassoc/contract let LLVM vectorise the row reductions; no nnan/ninf, so selects stay exact.
@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def row_pass(
    t: Any, p: Any, m: Any, kt: Any, kp: Any, col: Any, agg: Any, spot: Any, detail: bool,
    row_constant_check: float, touch: Any, block_rows: int,
) -> bool:
    """Accumulate the shifted column sums and finish every spot; False on a non-finite sum."""
    n_rows, n_cols = t.shape
    tb, pb, mb = touch
    t_row = tb.size // max(n_rows, 1)
    p_row = pb.size // max(n_rows, 1)
    m_row = mb.size // max(n_rows, 1)
    touched = 0
    cn = col[0]
    cst = col[1]
    csp = col[2]
    cstt = col[3]
    cspp = col[4]
    cstp = col[5]
    csdd = col[6]
    csad = col[7]
    finite = True
    for i in range(n_rows):
        if block_rows > 0 and i % block_rows == 0:
            # Load one byte per cache line of the next block of rows: many independent
            # misses in flight, where the compute loop below would wait on them one by one.
            stop = min(n_rows, i + block_rows)
            for k in range(i * t_row, stop * t_row, 64):
                touched += tb[k]
            for k in range(i * p_row, stop * p_row, 64):
                touched += pb[k]
            for k in range(i * m_row, stop * m_row, 64):
                touched += mb[k]
        rn = 0.0
        rt = 0.0
        rp = 0.0
        rdd = 0.0
        for j in range(n_cols):
            mk = m[i, j]
            a = np.float64(t[i, j])
            b = np.float64(p[i, j])
            ac = (a - kt[j]) if mk else 0.0
            bc = (b - kp[j]) if mk else 0.0
            d = (a - b) if mk else 0.0
            dd = d * d
            rn += 1.0 if mk else 0.0
            rt += a if mk else 0.0
            rp += b if mk else 0.0
            rdd += dd
            cn[j] += 1.0 if mk else 0.0
            cst[j] += ac
            csp[j] += bc
            cstt[j] += ac * ac
            cspp[j] += bc * bc
            cstp[j] += ac * bc
            csdd[j] += dd
            csad[j] += abs(d)
        mt = rt / rn if rn > 0.0 else 0.0
        mp = rp / rn if rn > 0.0 else 0.0
        ctt = 0.0
        cpp = 0.0
        ctp = 0.0
        for j in range(n_cols):
            mk = m[i, j]
            ac = (np.float64(t[i, j]) - mt) if mk else 0.0
            bc = (np.float64(p[i, j]) - mp) if mk else 0.0
            ctt += ac * ac
            cpp += bc * bc
            ctp += ac * bc
        finite = finite and all_finite(rt, rp, ctt, cpp, ctp, rdd, 0.0)
        # The row sums are centred exactly already; a row this close to constant is
        # checked for exact constancy on its measured values.
        t_const = False
        p_const = False
        safe = max(rn, 1.0)
        if rn > 0.0 and (
            ctt <= row_constant_check * rt * rt / safe
            or cpp <= row_constant_check * rp * rp / safe
        ):
            t_hi = -np.inf
            t_lo = np.inf
            p_hi = -np.inf
            p_lo = np.inf
            for j in range(n_cols):
                if m[i, j]:
                    a = np.float64(t[i, j])
                    b = np.float64(p[i, j])
                    t_hi = max(t_hi, a)
                    t_lo = min(t_lo, a)
                    p_hi = max(p_hi, b)
                    p_lo = min(p_lo, b)
            t_const = t_hi == t_lo
            p_const = p_hi == p_lo
        pcc = pearson(rn, ctt, cpp, ctp, t_const, p_const)
        r2v = r2(rn, rdd, ctt, t_const)
        tally(agg, AGG_SPOT, rn, pcc, r2v, t_const, p_const)
        if detail:
            spot[0, i] = rn
            spot[1, i] = pcc
            spot[2, i] = r2v
            spot[3, i] = rdd / rn if rn > 0.0 else np.nan
    agg[AGG_TOUCHED] = touched  # keeps the touching loads alive
    return finite


@numba.njit(nogil=True, cache=True)
def gene_finish(
    t: Any, p: Any, m: Any, col: Any, agg: Any, gene: Any, column_condition_min: float
) -> bool:
    """Finish every gene from the shifted sums; False if a sum is not finite."""
    finite = True
    for j in range(col.shape[1]):
        n = col[0, j]
        st = col[1, j]
        sp = col[2, j]
        sdd = col[6, j]
        sad = col[7, j]
        finite = finite and all_finite(st, sp, col[3, j], col[4, j], col[5, j], sdd, sad)
        safe = max(n, 1.0)
        # Undo the shifts; a column whose one-pass variance lost too many digits to
        # cancellation is recomputed by two passes.
        stt = max(col[3, j] - st**2 / safe, 0.0)
        spp = max(col[4, j] - sp**2 / safe, 0.0)
        stp = col[5, j] - st * sp / safe
        t_const = False
        p_const = False
        if n > 0.0 and (
            stt <= column_condition_min * col[3, j] or spp <= column_condition_min * col[4, j]
        ):
            stt, spp, stp, t_const, p_const = exact_column(t, p, m, j)
        pcc = pearson(n, stt, spp, stp, t_const, p_const)
        r2v = r2(n, sdd, stt, t_const)
        tally(agg, AGG_GENE, n, pcc, r2v, t_const, p_const)
        gene[0, j] = n
        gene[1, j] = pcc
        gene[2, j] = r2v
        gene[3, j] = sdd / n if n > 0.0 else np.nan
        gene[4, j] = sad / n if n > 0.0 else np.nan
        agg[AGG_N_MEASURED] += n
        agg[AGG_SDD] += sdd
        agg[AGG_SAD] += sad
    return finite


@numba.njit(nogil=True, cache=True)
def fused(
    t: Any, p: Any, m: Any, detail: bool, column_condition_min: float,
    row_constant_check: float, touch: Any, block_rows: int,
) -> Any:
    """Return (agg, gene, spot) of ``_kernels.fused_metrics``."""
    n_rows, n_cols = t.shape
    kt, kp = column_shifts(t, p, m)
    col = np.zeros((8, n_cols))
    agg = np.zeros(AGG_SIZE)
    spot = np.empty((4, n_rows if detail else 0))
    gene = np.empty((5, n_cols))
    finite = row_pass(
        t, p, m, kt, kp, col, agg, spot, detail, row_constant_check, touch, block_rows
    )
    finite = gene_finish(t, p, m, col, agg, gene, column_condition_min) and finite
    agg[AGG_FINITE] = 1.0 if finite else 0.0
    return agg, gene, spot
