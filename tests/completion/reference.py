"""Loop-by-loop reference implementations the vectorized code is checked against."""

from __future__ import annotations

import numpy as np

from evaluator.core.visium import HEX_OFFSETS


def loop_adaptive_median_filter(
    expression: np.ndarray,
    mask: np.ndarray,
    array_row: np.ndarray,
    array_col: np.ndarray,
    slide_ids: np.ndarray,
    n_hops: int = 4,
) -> np.ndarray:
    """Apply SpaRED's adaptive median filter one spot and one gene at a time (slow, obvious)."""
    values = np.where(mask, np.asarray(expression, dtype=np.float64), 0.0)
    out = np.asarray(expression).astype(np.float32).copy()
    n_genes = values.shape[1]
    for slide in np.unique(slide_ids):
        idx = np.flatnonzero(slide_ids == slide)
        position = {(int(array_row[i]), int(array_col[i])): int(i) for i in idx}

        def neighbours(i: int, position: dict[tuple[int, int], int] = position) -> list[int]:
            r, c = int(array_row[i]), int(array_col[i])
            return [position[(r + dr, c + dc)] for dr, dc in HEX_OFFSETS
                    if (r + dr, c + dc) in position]

        for i in idx:
            # Breadth-first search: window k = the spot and every spot within k hops.
            distance = {int(i): 0}
            frontier = [int(i)]
            windows = []
            for hop in range(1, n_hops + 1):
                next_frontier = []
                for u in frontier:
                    for v in neighbours(u):
                        if v not in distance:
                            distance[v] = hop
                            next_frontier.append(v)
                frontier = next_frontier
                windows.append(sorted(distance))
            for j in range(n_genes):
                if mask[i, j]:
                    continue
                z_xy = 0.0  # a missing entry is a zero (SpaRED filters log1p)
                stage, k, result = "A", 0, None
                while result is None:
                    if stage == "A":
                        z_med = float(np.median(values[windows[k], j]))
                        if z_med != 0:
                            stage = "B"
                        else:
                            k += 1
                            if k >= n_hops:
                                column = values[idx, j]
                                nonzero = column[column != 0]
                                result = float(np.median(nonzero)) if nonzero.size else 0.0
                    else:
                        result = z_xy if z_xy != 0 else z_med
                out[i, j] = np.float32(result)
    return out
