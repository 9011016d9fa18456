"""Straightforward per-column reference of the masked metrics (definitions in metrics.py).

For each column: take the measured entries ``t[mask[:, j], j]`` and ``p[mask[:, j], j]`` and apply
the textbook formulas in float64; rows are the columns of the transposes.
"""

from __future__ import annotations

import numpy as np


def per_column(t: np.ndarray, p: np.ndarray, m: np.ndarray) -> tuple[list[float], list[float]]:
    """Return (PCC of every column with a measured entry, R2 of every column where defined)."""
    pccs: list[float] = []
    r2s: list[float] = []
    for j in range(t.shape[1]):
        a = t[m[:, j], j].astype(np.float64)
        b = p[m[:, j], j].astype(np.float64)
        if a.size == 0:
            continue
        if a.size == 1 or np.ptp(a) == 0 or np.ptp(b) == 0:
            pccs.append(0.0)
        else:
            ac, bc = a - a.mean(), b - b.mean()
            pccs.append(float(ac @ bc / np.sqrt((ac @ ac) * (bc @ bc))))
        if a.size >= 2 and np.ptp(a) > 0:
            r2s.append(float(1.0 - ((a - b) ** 2).sum() / ((a - a.mean()) ** 2).sum()))
    return pccs, r2s


def reference_metrics(t: np.ndarray, p: np.ndarray, m: np.ndarray) -> dict[str, float | None]:
    """Return the six metrics by the per-column reference."""
    pcc_g, r2_g = per_column(t, p, m)
    pcc_p, r2_p = per_column(t.T, p.T, m.T)
    d = t.astype(np.float64)[m] - p.astype(np.float64)[m]
    return {
        "mse": float((d**2).mean()),
        "mae": float(np.abs(d).mean()),
        "pcc_gene": float(np.mean(pcc_g)),
        "pcc_patch": float(np.mean(pcc_p)),
        "r2_gene": float(np.mean(r2_g)) if r2_g else None,
        "r2_patch": float(np.mean(r2_p)) if r2_p else None,
    }
