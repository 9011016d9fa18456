"""The computations of SpaRED's processing, one function per step, on plain arrays.

References are SpaRED's own functions (``spared.filtering.filter_dataset``,
``spared.gene_features.get_exp_frac`` / ``get_glob_exp_frac`` / ``compute_moran``,
``spared.layer_operations.tpm_normalization`` / ``log1p_transformation`` / ``get_deltas``);
the runner (``evaluator.datasets.pipeline.runner``) chains them in SpaRED's order.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import anndata as ad
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from evaluator.datasets.pipeline.numpy_sort import pandas_descending_order


def inside(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Return ``low < values < high`` (SpaRED keeps totals strictly inside its range)."""
    return (values > low) & (values < high)


def spot_totals(counts: sp.spmatrix) -> np.ndarray:
    """Return each spot's total counts (float64)."""
    return np.asarray(counts.sum(axis=1, dtype=np.float64)).ravel()


def gene_totals(counts: sp.spmatrix) -> np.ndarray:
    """Return each gene's total counts (float64)."""
    return np.asarray(counts.sum(axis=0, dtype=np.float64)).ravel()


def missing_fraction(counts: sp.spmatrix | np.ndarray) -> float:
    """Return the fraction of zero entries (SpaRED's missing data: an unmeasured value is 0)."""
    n = counts.shape[0] * counts.shape[1]
    if n == 0:
        return 0.0
    nonzero = (counts.count_nonzero() if isinstance(counts, sp.spmatrix | sp.sparray)
               else np.count_nonzero(counts))
    return 1.0 - nonzero / n


def expression_fractions(counts: sp.spmatrix, slide_codes: npt.ArrayLike
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(exp_frac, glob_exp_frac)`` of every gene.

    ``exp_frac``: for each slide, the fraction of its spots where the gene is non-zero; the
    minimum over slides. ``glob_exp_frac``: the same fraction over all spots.
    """
    codes = np.asarray(slide_codes)
    n_slides = int(codes.max()) + 1 if codes.size else 0
    present = sp.csr_matrix(counts, copy=True)
    present.data = (present.data != 0).astype(np.float64)
    membership = sp.csr_matrix((np.ones(codes.size), (codes, np.arange(codes.size))),
                               shape=(n_slides, codes.size))
    per_slide = np.asarray((membership @ present).todense())
    spots = np.bincount(codes, minlength=n_slides).astype(np.float64)[:, None]
    exp_frac = (per_slide / spots).min(axis=0)
    glob_exp_frac = per_slide.sum(axis=0) / max(codes.size, 1)
    return exp_frac, glob_exp_frac


def real_data_rule(exp_frac: np.ndarray, glob_exp_frac: np.ndarray, percentage: float,
                   ties: Literal["pandas", "stable"] = "pandas") -> np.ndarray:
    """Return the genes kept by SpaRED's ``real_data_percentage`` rule (boolean mask).

    Genes are ordered by ``exp_frac``, highest first; the running mean of their
    ``glob_exp_frac`` is taken, and the genes up to the *last* position where it is at least
    ``percentage`` are kept. None are kept when no position reaches it; all are kept with
    ``percentage`` 0. Which of the genes tied in ``exp_frac`` at the cut are kept depends on
    the order of ties: ``pandas`` is SpaRED's (``DataFrame.sort_values(ascending=False)``,
    pandas' default quicksort, with numpy's portable introsort: ``numpy_sort``), ``stable``
    keeps them in input order.
    """
    keep = np.zeros(exp_frac.shape[0], dtype=bool)
    if exp_frac.size == 0:
        return keep
    if ties == "pandas":
        order = pandas_descending_order(exp_frac)
    else:
        order = np.argsort(-exp_frac, kind="stable")
    running = np.cumsum(glob_exp_frac[order]) / np.arange(1, order.size + 1)
    reached = np.flatnonzero(running >= percentage)
    if reached.size:
        keep[order[: reached[-1] + 1]] = True
    return keep


def tpm(counts: np.ndarray | sp.spmatrix, gene_length: np.ndarray,
        scale: np.ndarray | None = None) -> np.ndarray:
    """Return transcripts per million: counts / length, each spot scaled to sum to 1e6.

    A spot with no counts gets zeros (SpaRED's ``nan_to_num``). ``scale`` (``tpm_scale`` of
    all the genes) lets a block of genes be normalized by the whole spot's total.
    """
    if scale is None:
        scale = tpm_scale(counts, gene_length)
    per_length = (counts.multiply(1.0 / gene_length[None, :]).toarray()
                  if isinstance(counts, sp.spmatrix | sp.sparray)
                  else np.asarray(counts, dtype=np.float64) / gene_length[None, :])
    return (per_length * scale[:, None]).astype(np.float32)


def tpm_scale(counts: np.ndarray | sp.spmatrix, gene_length: np.ndarray) -> np.ndarray:
    """Return each spot's TPM factor ``1e6 / sum_g counts/length`` (0 for an empty spot)."""
    rate = counts @ (1.0 / np.asarray(gene_length, dtype=np.float64))
    rate = np.asarray(rate, dtype=np.float64).ravel()
    with np.errstate(divide="ignore"):
        return np.where(rate > 0, 1e6 / rate, 0.0)


def log2_1p(values: np.ndarray) -> np.ndarray:
    """Return ``log2(values + 1)`` as float32, as SpaRED's ``sc.pp.log1p(base=2)`` computes it.

    scanpy takes ``log1p`` then divides by ``log(2)`` (in float64 here).
    """
    return (np.log1p(np.asarray(values, dtype=np.float64)) / np.log(2.0)).astype(np.float32)


def spared_knn_graph(spatial: np.ndarray, slide_codes: npt.ArrayLike, n_neighs: int = 6
                     ) -> sp.csr_matrix:
    """Return SpaRED's spatial graph: squidpy 1.2.3's ``spatial_neighbors`` per slide.

    ``sq.gr.spatial_neighbors(coord_type='generic', n_neighs=6)`` on pixel coordinates, as
    squidpy 1.2.3 (SpaRED's pin) stores it: ``A[j, i] = 1`` when ``j`` is one of the
    ``n_neighs`` nearest spots of ``i`` (scikit-learn's ``NearestNeighbors.kneighbors``,
    the spot itself excluded). Row ``j`` thus lists the spots that have ``j`` among their
    nearest — the transpose of what squidpy >= 1.4 stores. Directed: a spot far from the
    others (an island) has 6 neighbours of its own but may be nobody's, so an empty row.
    Block-diagonal over slides (``slide_codes``, integer per spot). Raises ``ValueError``
    when a slide has ``n_neighs`` spots or fewer (squidpy fails there too).
    """
    # why here: scikit-learn (science extra, ~1.5 s to import) only for this graph
    from sklearn.neighbors import NearestNeighbors

    xy = np.asarray(spatial, dtype=np.float64)
    codes = np.asarray(slide_codes)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for code in pd.unique(codes):
        index = np.flatnonzero(codes == code)
        if index.size <= n_neighs:
            raise ValueError(f"a slide with {index.size} spots: expected more than {n_neighs} "
                             "for the nearest-neighbour graph")
        tree = NearestNeighbors(n_neighbors=n_neighs, radius=1, metric="euclidean")
        tree.fit(xy[index])
        _, neighbours = tree.kneighbors()
        rows.append(index[neighbours.reshape(-1)])
        cols.append(np.repeat(index, n_neighs))
    n = xy.shape[0]
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    return sp.csr_matrix((np.ones(row.size), (row, col)), shape=(n, n))


def _squidpy() -> Any:
    """Import squidpy (science extra, ~5 s) when a step first needs it, its warnings silenced."""
    with warnings.catch_warnings():
        # squidpy's docstring templating emits SyntaxWarnings at import; they are harmless.
        warnings.simplefilter("ignore")
        import squidpy as sq
    return sq


def morans_i(values: np.ndarray, adjacency: sp.spmatrix) -> np.ndarray:
    """Return Moran's I of every column of ``values`` (spots x genes) on one slide's graph.

    Computed by ``squidpy.gr.spatial_autocorr`` (mode ``moran``, row-normalized weights, no
    permutations) on ``adjacency`` as ``obsp['spatial_connectivities']``:
    ``I = n / S0 * sum_ij w_ij z_i z_j / sum_i z_i^2`` with ``z`` the centred values and ``w``
    the row-normalized weights. A gene constant on the slide has no I: NaN — also when it is
    constant only up to rounding (``numerically_constant``), where I would measure float noise.
    """
    sq = _squidpy()
    if values.shape[1] == 0:
        return np.zeros(0)
    data = ad.AnnData(X=np.asarray(values, dtype=np.float64),
                      obsp={"spatial_connectivities": sp.csr_matrix(adjacency,
                                                                   dtype=np.float64)})
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        # Constant genes get NaN, which is what the caller expects; scanpy says so loudly.
        warnings.filterwarnings("ignore", message=".*variables were constant", category=UserWarning)
        frame = sq.gr.spatial_autocorr(data, mode="moran", genes=list(data.var_names),
                                       n_perms=None, corr_method=None, copy=True,
                                       show_progress_bar=False, n_jobs=1)
    scores = frame["I"].reindex(data.var_names).to_numpy(dtype=np.float64)
    scores[numerically_constant(values)] = np.nan
    return scores


def morans_i_numpy(values: np.ndarray, adjacency: sp.spmatrix,
                   constant_nan: bool = True) -> np.ndarray:
    """Return the same Moran's I as ``morans_i`` with one sparse product for all genes.

    ``I = n / S0 * colsum(Z * (W @ Z)) / colsum(Z * Z)`` with ``W`` the row-standardized
    ``adjacency`` and ``Z`` the centred values; numerically constant genes get NaN
    (``constant_nan``; else only genes whose centred values are all exactly 0, as scanpy's
    ``_morans_i`` that SpaRED's squidpy calls).
    """
    graph = sp.csr_matrix(adjacency, dtype=np.float64)
    degree = np.asarray(graph.sum(axis=1)).ravel()
    weights = sp.diags(np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
                       ) @ graph
    centred = np.asarray(values, dtype=np.float64)
    centred = centred - centred.mean(axis=0)
    numerator = np.einsum("ij,ij->j", centred, weights @ centred)
    denominator = np.einsum("ij,ij->j", centred, centred)
    s0 = float(weights.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = values.shape[0] / s0 * numerator / denominator if s0 > 0 else \
            np.full(values.shape[1], np.nan)
    constant = numerically_constant(values) if constant_nan else np.zeros(scores.size, bool)
    scores[constant | (denominator == 0)] = np.nan
    return scores


def numerically_constant(values: np.ndarray) -> np.ndarray:
    """Return, per column, whether its range is within rounding of its magnitude (1e-5 rel.)."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 0:
        return np.ones(values.shape[1], dtype=bool)
    spread = values.max(axis=0) - values.min(axis=0)
    return spread <= 1e-5 * (1.0 + np.abs(values).max(axis=0))


def mean_morans_i(values: np.ndarray, slide_groups: list[tuple[np.ndarray, sp.spmatrix]],
                  backend: Literal["squidpy", "numpy", "spared"] = "squidpy") -> np.ndarray:
    """Return Moran's I per gene, per slide, averaged over slides (NaNs skipped).

    ``slide_groups`` holds (spot indices, adjacency of those spots) per slide. A gene
    without an I on any slide gets NaN (ranked last by ``top_k``). ``backend`` picks
    ``morans_i`` (squidpy), ``morans_i_numpy`` (the same values, faster) or ``spared``
    (``morans_i_numpy`` with scanpy's NaN rule: only an exactly constant gene has none).
    """
    def score(block: np.ndarray, adjacency: sp.spmatrix) -> np.ndarray:
        if backend == "squidpy":
            return morans_i(block, adjacency)
        return morans_i_numpy(block, adjacency, constant_nan=backend == "numpy")

    scores = np.stack([score(values[index], adjacency) for index, adjacency in slide_groups])
    finite = np.isfinite(scores)
    counted = finite.sum(axis=0)
    total = np.where(finite, scores, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, total / np.maximum(counted, 1), np.nan)


def ranking(scores: np.ndarray) -> np.ndarray:
    """Return gene positions by score, highest first; ties in input order; NaN last."""
    key = np.where(np.isfinite(scores), scores, -np.inf)
    return np.lexsort((np.arange(scores.size), -key))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Return the positions of the ``k`` highest scores, highest first (``ranking``)."""
    return ranking(scores)[:k]


def deltas(values: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (values minus the training spots' mean per gene, that mean) — SpaRED's deltas."""
    mean = np.asarray(values[train], dtype=np.float64).mean(axis=0)
    return (np.asarray(values, dtype=np.float64) - mean[None, :]).astype(np.float32), mean


def noisy(values: np.ndarray, mask: np.ndarray, fill: np.ndarray | float = 0.0) -> np.ndarray:
    """Return SpaRED's ``noisy_<layer>``: ``values`` where measured, ``fill`` elsewhere.

    ``spared.layer_operations.add_noisy_layer``: 0 for a ``log1p`` layer, minus the gene's
    training mean (``fill`` per gene) for a ``deltas`` layer.
    """
    filled = np.broadcast_to(np.asarray(fill, dtype=np.float32), values.shape)
    return np.where(mask, values, filled).astype(np.float32)
