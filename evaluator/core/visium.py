"""Visium hexagonal grid geometry: neighbours and pixel coordinates.

Visium arrays index spots by ``array_row`` (0–77) and ``array_col`` (0–127) with
``array_row + array_col`` even; the six neighbours of a spot are at column offsets ±2 in the
same row and ±1 in the rows above and below. Spots are 100 µm apart centre to centre.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

HEX_OFFSETS: tuple[tuple[int, int], ...] = ((0, -2), (0, 2), (-1, -1), (-1, 1), (1, -1), (1, 1))
VISIUM_ROWS = 78
VISIUM_COLS = 128


def hex_neighbors(
    array_row: npt.ArrayLike, array_col: npt.ArrayLike, groups: npt.ArrayLike | None = None
) -> sp.csr_matrix:
    """Return the symmetric 1-hop adjacency of spots on the hexagonal grid as a CSR matrix.

    ``groups`` (e.g. slide ids) keeps spots of different slides apart. Spots with no neighbour
    get an empty row. Duplicate coordinates within a group are an error (raised as ValueError by
    the caller's validation; here the first occurrence wins).
    """
    row = np.asarray(array_row, dtype=np.int64)
    col = np.asarray(array_col, dtype=np.int64)
    n = row.shape[0]
    if groups is None:
        group_codes = np.zeros(n, dtype=np.int64)
    else:
        _, group_codes = np.unique(np.asarray(groups), return_inverse=True)
        group_codes = group_codes.astype(np.int64)
    span_r = int(row.max(initial=0)) + 3
    span_c = int(col.max(initial=0)) + 4
    # Encode (group, row, col) as one integer, shifted so offsets never go negative.
    key = (group_codes * span_r + (row + 1)) * span_c + (col + 2)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    src_parts: list[np.ndarray] = []
    dst_parts: list[np.ndarray] = []
    for dr, dc in HEX_OFFSETS:
        target = (group_codes * span_r + (row + 1 + dr)) * span_c + (col + 2 + dc)
        pos = np.searchsorted(sorted_key, target)
        pos_clipped = np.minimum(pos, n - 1) if n else pos
        found = (pos < n) & (sorted_key[pos_clipped] == target) if n else np.zeros(0, bool)
        src_parts.append(np.nonzero(found)[0])
        dst_parts.append(order[pos_clipped[found]])
    src = np.concatenate(src_parts) if src_parts else np.zeros(0, np.int64)
    dst = np.concatenate(dst_parts) if dst_parts else np.zeros(0, np.int64)
    data = np.ones(src.shape[0], dtype=np.float32)
    adj = sp.csr_matrix((data, (src, dst)), shape=(n, n))
    adj.sum_duplicates()
    adj.data[:] = 1.0
    return adj


def visium_grid_to_pixels(
    array_row: npt.ArrayLike, array_col: npt.ArrayLike, spot_distance_px: float = 138.0
) -> np.ndarray:
    """Return full-resolution pixel coordinates ``[x, y]`` of grid spots (``obsm['spatial']``).

    Neighbours in a row are ``spot_distance_px`` apart; rows are ``sqrt(3)/2`` of that apart.
    """
    row = np.asarray(array_row, dtype=np.float64)
    col = np.asarray(array_col, dtype=np.float64)
    x = col * spot_distance_px / 2.0
    y = row * spot_distance_px * np.sqrt(3.0) / 2.0
    return np.stack([x, y], axis=1)
