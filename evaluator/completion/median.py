"""The adaptive median filter of SEPAL / SpaRED, vectorized over spots and genes.

Reference: SpaRED's ``median_cleaner`` (Mejia et al., SpaRED and SpaCKLE, section 4 and its
pipeline; first proposed in SEPAL, arXiv:2309.01036). The exact rule is in
``adaptive_median_filter``'s docstring.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from evaluator.completion.errors import CompletionInputError
from evaluator.core.visium import hex_neighbors

# Upper bound on the number of gathered (window member, gene) values held at once; keeps peak
# memory near 100 MB whatever the slide size.
_CHUNK_ELEMENTS = 4_000_000


def adaptive_median_filter(
    expression: np.ndarray,
    mask: np.ndarray,
    array_row: np.ndarray,
    array_col: np.ndarray,
    slide_ids: np.ndarray,
    n_hops: int = 4,
    adjacency: sp.spmatrix | None = None,
) -> np.ndarray:
    """Complete every missing (mask-False) entry with SpaRED's adaptive median filter.

    The rule, per gene independently and per slide (slides never see each other):

    - Values. ``E = expression`` where ``mask`` is True and ``0`` where it is False: SpaRED
      runs the filter on ``log1p``, where a missing entry *is* a zero, so a missing entry
      counts as 0 in every window whatever ``expression`` holds there.
    - Windows. Window ``k`` (``k = 1 .. n_hops``) of a spot is the spot itself plus every spot
      of its slide within ``k`` hops on the graph: by default the Visium hexagonal graph
      (``evaluator.core.visium.hex_neighbors``): a disk of 1 + 6 + 12 + ... spots in the
      interior, fewer at borders, only the spot itself for an isolated spot. SpaRED builds
      the 1-hop graph with squidpy's 6 nearest neighbours (pass it as ``adjacency``, e.g.
      ``pipeline.steps.spared_knn_graph``; directed: spot ``i``'s window is ``i`` and the
      spots reached from row ``i`` in at most ``k`` steps, as SpaRED's sum of matrix powers).
    - Stage A. ``z_med`` = median (``np.median``: mean of the two middle values for an even
      count) of ``E`` over window ``k``, *zeros included*. If ``z_med == 0`` grow the window
      (``k + 1``) and repeat; otherwise go to stage B.
    - Stage B. The entry's own value is 0 (it is missing), so the filter returns ``z_med``.
    - Fallback. If every window up to ``n_hops`` gives 0, the entry gets the median of the
      gene's non-zero values of ``E`` over its slide, or 0 if the gene has none there.

    Measured (mask-True) entries are returned unchanged (cast to float32). Medians are computed
    in float64 and then cast, so results equal a loop over ``np.median`` exactly.

    Vectorized: per hop, the window values of every still-unresolved (spot, gene) entry are
    gathered into one padded block, sorted row-wise, and the middle order statistics read
    off; Python loops run only over hops, entry chunks and slides.

    Raises ``CompletionInputError`` for inconsistent shapes, a non-boolean mask, non-finite
    measured values, non-integer grid coordinates, duplicate spots in a slide or ``n_hops < 1``.
    """
    expr, mask_arr, rows, cols, groups = _validate(
        expression, mask, array_row, array_col, slide_ids, n_hops
    )
    n_spots, n_genes = expr.shape
    out = expr.astype(np.float32, copy=True)
    if n_spots == 0 or n_genes == 0 or bool(mask_arr.all()):
        return out

    values = np.where(mask_arr, expr, 0.0)
    unresolved = ~mask_arr
    completed = np.zeros((n_spots, n_genes), dtype=np.float64)

    is_zero = (values == 0.0).astype(np.float32)
    has_negative = bool((values < 0.0).any())
    is_negative = (values < 0.0).astype(np.float32)
    if adjacency is None:
        adjacency = hex_neighbors(rows, cols, groups)
    elif adjacency.shape != (n_spots, n_spots):
        raise CompletionInputError(f"adjacency: expected shape {(n_spots, n_spots)}, found "
                                   f"{adjacency.shape}")
    step = (sp.csr_matrix(adjacency, dtype=np.float32)
            + sp.identity(n_spots, dtype=np.float32, format="csr")).tocsr()
    step.data[:] = 1.0
    window = step
    for hop in range(1, n_hops + 1):
        if hop > 1:
            window = (window @ step).tocsr()
            window.data[:] = 1.0
        pending = np.flatnonzero(unresolved.any(axis=1))
        if pending.size == 0:
            break
        # Counting zeros and negatives per window (a sparse product) settles the entries whose
        # median is certainly 0 without sorting: both middle positions fall among the zeros.
        rows_window = window[pending]
        sizes = np.diff(rows_window.indptr)[:, None]
        zeros = rows_window @ is_zero
        negatives = rows_window @ is_negative if has_negative else 0.0
        certainly_zero = ((sizes - 1) // 2 >= negatives) & (sizes // 2 < negatives + zeros)
        local, gene_idx = np.nonzero(unresolved[pending] & ~certainly_zero)
        if local.size == 0:
            continue
        spot_idx = pending[local]
        medians = _window_medians(window, spot_idx, gene_idx, values)
        hit = medians != 0.0
        completed[spot_idx[hit], gene_idx[hit]] = medians[hit]
        unresolved[spot_idx[hit], gene_idx[hit]] = False

    if unresolved.any():
        slide_medians = _nonzero_medians_per_slide(values, groups)
        spot_idx, gene_idx = np.nonzero(unresolved)
        completed[spot_idx, gene_idx] = slide_medians[groups[spot_idx], gene_idx]

    missing = ~mask_arr
    out[missing] = completed[missing].astype(np.float32)
    return out


def _window_medians(
    window: sp.csr_matrix, spot_idx: np.ndarray, gene_idx: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """Return, per (spot, gene) entry, the median of the gene over the spot's window (float64).

    Window members are gathered into a (entries x largest window) block padded with +inf,
    each row is sorted, and the middle order statistics are read at each row's own count.
    """
    sizes = np.diff(window.indptr)
    width = int(sizes.max())
    # Padded member table of every spot: row i holds its window, then -1.
    members = np.full((window.shape[0], width), -1, dtype=np.int64)
    slot = np.arange(window.indices.size) - np.repeat(window.indptr[:-1], sizes)
    members[np.repeat(np.arange(window.shape[0]), sizes), slot] = window.indices
    padded = np.vstack([values, np.full((1, values.shape[1]), np.inf)])
    members[members < 0] = values.shape[0]  # the +inf row
    result = np.empty(spot_idx.size, dtype=np.float64)
    chunk = max(1, _CHUNK_ELEMENTS // width)
    for start in range(0, spot_idx.size, chunk):
        spots = spot_idx[start:start + chunk]
        block = padded[members[spots], gene_idx[start:start + chunk, None]]
        block.sort(axis=1)
        count = sizes[spots]
        lo = np.take_along_axis(block, ((count - 1) // 2)[:, None], axis=1)[:, 0]
        hi = np.take_along_axis(block, (count // 2)[:, None], axis=1)[:, 0]
        # Same arithmetic as np.median: mean of the two middle values (equal for odd sizes).
        result[start:start + chunk] = (lo + hi) / 2.0
    return result


def _nonzero_medians_per_slide(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Return (n_slides, n_genes): median of each gene's non-zero values per slide, else 0."""
    n_slides = int(groups.max()) + 1
    out = np.zeros((n_slides, values.shape[1]), dtype=np.float64)
    for slide in range(n_slides):
        block = values[groups == slide]
        nonzero = block != 0.0
        counts = nonzero.sum(axis=0)
        # NaN sorts last, so the first `count` entries of each column are its non-zero values.
        ordered = np.sort(np.where(nonzero, block, np.nan), axis=0)
        has_any = counts > 0
        cols = np.flatnonzero(has_any)
        lo = (counts[cols] - 1) // 2
        hi = counts[cols] // 2
        out[slide, cols] = (ordered[lo, cols] + ordered[hi, cols]) / 2.0
    return out


def _validate(
    expression: npt.ArrayLike,
    mask: npt.ArrayLike,
    array_row: npt.ArrayLike,
    array_col: npt.ArrayLike,
    slide_ids: npt.ArrayLike,
    n_hops: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    expr = np.asarray(expression)
    if expr.ndim != 2:
        raise CompletionInputError(
            f"expression: expected a 2-D array (n_spots, n_genes), found shape {expr.shape}"
        )
    if not np.issubdtype(expr.dtype, np.number) or np.issubdtype(expr.dtype, np.complexfloating):
        raise CompletionInputError(
            f"expression: expected a real numeric array, found dtype {expr.dtype}"
        )
    expr = expr.astype(np.float64, copy=False)
    mask_arr = np.asarray(mask)
    if mask_arr.shape != expr.shape:
        raise CompletionInputError(
            f"mask: expected shape {expr.shape} (same as expression), found {mask_arr.shape}"
        )
    if mask_arr.dtype != np.bool_:
        raise CompletionInputError(
            f"mask: expected a boolean array (True = measured), found dtype {mask_arr.dtype}"
        )
    if not np.isfinite(expr[mask_arr]).all():
        raise CompletionInputError(
            "expression: expected finite values at measured entries, found NaN or inf"
        )
    n_spots = expr.shape[0]
    coords = []
    for name, arr in (("array_row", array_row), ("array_col", array_col)):
        a = np.asarray(arr)
        if a.shape != (n_spots,):
            raise CompletionInputError(
                f"{name}: expected shape ({n_spots},) (one per spot), found {a.shape}"
            )
        if a.size and not (np.issubdtype(a.dtype, np.number) and np.all(a == np.round(a))):
            raise CompletionInputError(
                f"{name}: expected integer Visium grid coordinates, found dtype {a.dtype} "
                "with non-integer values"
            )
        coords.append(a.astype(np.int64))
    slides = np.asarray(slide_ids)
    if slides.shape != (n_spots,):
        raise CompletionInputError(
            f"slide_ids: expected shape ({n_spots},) (one per spot), found {slides.shape}"
        )
    if isinstance(n_hops, bool) or not isinstance(n_hops, int | np.integer) or n_hops < 1:
        raise CompletionInputError(f"n_hops: expected an integer >= 1, found {n_hops!r}")
    if n_spots:
        slide_names, groups = np.unique(slides.astype(str), return_inverse=True)
        groups = groups.astype(np.int64).reshape(-1)
        r, c = coords[0] - coords[0].min(), coords[1] - coords[1].min()
        span_r, span_c = int(r.max()) + 1, int(c.max()) + 1
        key = np.sort((groups * span_r + r) * span_c + c)
        dup = np.flatnonzero(key[1:] == key[:-1])
        if dup.size:
            k = int(key[dup[0]])
            g, rc = divmod(k, span_r * span_c)
            raise CompletionInputError(
                "array_row/array_col: expected one spot per grid position and slide, found "
                f"several at (array_row={rc // span_c + coords[0].min()}, "
                f"array_col={rc % span_c + coords[1].min()}) of slide {slide_names[g]!r}"
            )
    else:
        groups = np.zeros(0, dtype=np.int64)
    return expr, mask_arr, coords[0], coords[1], groups
