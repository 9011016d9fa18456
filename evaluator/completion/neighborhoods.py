"""Neighbourhoods of spots on the Visium hexagonal grid, ordered nearest first."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from evaluator.core.visium import hex_neighbors

PAD = -1
"""Index marking an empty slot of a neighbourhood (border or isolated spots)."""


def nearest_neighborhoods(
    array_row: np.ndarray,
    array_col: np.ndarray,
    slide_ids: np.ndarray,
    n_neighbors: int,
    max_hops: int = 2,
) -> np.ndarray:
    """Return (n_spots, 1 + n_neighbors) int64: each spot, then its nearest grid neighbours.

    Candidates are the spots of the same slide within ``max_hops`` hops on the hexagonal graph
    (SpaCKLE uses 2: up to 6 + 12 = 18 spots). They are ordered by Euclidean distance on the
    grid (1 for the first ring, sqrt(3) then 2 for the second), ties by spot index, and the
    first ``n_neighbors`` are kept. Slots left empty (borders, isolated spots) hold ``PAD``.
    """
    rows = np.asarray(array_row, dtype=np.int64)
    cols = np.asarray(array_col, dtype=np.int64)
    n = rows.shape[0]
    out = np.full((n, 1 + n_neighbors), PAD, dtype=np.int64)
    out[:, 0] = np.arange(n)
    if n == 0 or n_neighbors == 0:
        return out
    adjacency = hex_neighbors(rows, cols, np.asarray(slide_ids).astype(str))
    step = (adjacency + sp.identity(n, dtype=np.float32, format="csr")).tocsr()
    reach = step
    for _ in range(max_hops - 1):
        reach = (reach @ step).tocsr()
    reach = reach.tocoo()
    keep = reach.row != reach.col
    src, dst = reach.row[keep].astype(np.int64), reach.col[keep].astype(np.int64)
    # Grid coordinates in units of the spot spacing: neighbours in a row are 2 columns apart.
    x = cols * 0.5
    y = rows * (np.sqrt(3.0) / 2.0)
    dist = np.round(np.hypot(x[dst] - x[src], y[dst] - y[src]), 9)
    order = np.lexsort((dst, dist, src))
    src, dst = src[order], dst[order]
    first = np.searchsorted(src, np.arange(n))
    slot = np.arange(src.size) - first[src]
    chosen = slot < n_neighbors
    out[src[chosen], 1 + slot[chosen]] = dst[chosen]
    return out
