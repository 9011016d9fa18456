"""Raw inputs of the pipeline: counts with slides, patients, splits, coordinates and patches.

Accepted inputs (``inputs.read_raw`` reads either):

- an AnnData ``.h5ad`` of raw counts (``layers['counts']`` or ``X``, spots x genes, sparse or
  dense non-negative integers) with ``obs`` ``slide_id``, ``patient``, ``split``, ``array_row``,
  ``array_col``; ``obsm['spatial']``; ``obsm['patches_scale_1.0']`` (+ ``uns['patch_shape']``);
  ``var['gene_length']`` — the synthetic generator's raw output is one
  (``evaluator.datasets.synthetic_raw``);
- a sources ``.json`` (or a folder holding ``sources.json``) listing Space Ranger output folders,
  one per slide, with each slide's id, patient and split, and a table of gene lengths
  (``evaluator.datasets.pipeline.spaceranger``).

Anything missing is reported at once, naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from evaluator.datasets.patches import PatchRows
from evaluator.datasets.pipeline.errors import RawInputError
from evaluator.datasets.schema import PATCHES_KEY, SPATIAL_KEY, patch_shape_of
from evaluator.datasets.splits import SPLIT_NAMES

if TYPE_CHECKING:
    import anndata as ad

RAW_OBS_COLUMNS: tuple[str, ...] = ("slide_id", "patient", "split", "array_row", "array_col")
SOURCES_NAME = "sources.json"


@dataclass
class RawData:
    """Raw counts of one dataset and everything per spot that travels with them.

    ``counts`` is CSR float32 (spots x genes, explicit zeros removed); ``obs`` holds at least
    ``RAW_OBS_COLUMNS``; ``var`` at least ``gene_length`` (NaN where unknown: such genes are
    dropped by the TPM step, as SpaRED drops genes missing from its annotation).
    """

    counts: sp.csr_matrix
    obs: pd.DataFrame
    var: pd.DataFrame
    spatial: np.ndarray
    patches: np.ndarray | PatchRows  # flattened (spots, H*W*3) uint8; on disk at real size
    patch_shape: tuple[int, int, int]
    source: str

    @property
    def n_spots(self) -> int:
        """Number of spots."""
        return int(self.counts.shape[0])

    @property
    def n_genes(self) -> int:
        """Number of genes."""
        return int(self.counts.shape[1])


def _as_csr_counts(matrix: object, where: str, source: str) -> sp.csr_matrix:
    counts = sp.csr_matrix(matrix, dtype=np.float32) if sp.issparse(matrix) else \
        sp.csr_matrix(np.asarray(matrix, dtype=np.float32))
    values = counts.data
    if values.size and not np.all(np.isfinite(values)):
        raise RawInputError(source, f"{where}: expected finite counts, found NaN or inf")
    if values.size and values.min() < 0:
        raise RawInputError(source, f"{where}: expected non-negative counts, found "
                            f"{values.min():g}")
    fractional = values[values != np.round(values)]
    if fractional.size:
        raise RawInputError(
            source, f"{where}: expected raw counts (non-negative integers), found values such "
            f"as {fractional[0]:.4g} (a processed file? `data import` takes those)")
    counts.eliminate_zeros()
    counts.sort_indices()
    return counts


def _check_obs(obs: pd.DataFrame, source: str) -> list[str]:
    problems = [f"obs['{c}']: expected a column, found none" for c in RAW_OBS_COLUMNS
                if c not in obs.columns]
    if "split" in obs.columns:
        values = set(obs["split"].astype(str).unique().tolist())
        unknown = sorted(values - set(SPLIT_NAMES))
        if unknown:
            problems.append(f"obs['split']: expected values in {{train, val, test}}, found "
                            f"{unknown}")
        elif "train" not in values or not values & {"val", "test"}:
            problems.append("obs['split']: expected 'train' spots and 'val' or 'test' spots, "
                            f"found only {sorted(values)}")
    for column in ("array_row", "array_col"):
        if column in obs.columns:
            coords = pd.to_numeric(obs[column], errors="coerce").to_numpy(dtype=float)
            if not np.all(np.isfinite(coords)) or np.any(coords < 0) or np.any(coords % 1):
                problems.append(f"obs['{column}']: expected non-negative integers (Visium grid),"
                                f" found values such as {obs[column].iloc[0]!r}")
    if {"slide_id", "patient"} <= set(obs.columns):
        per_slide = obs.groupby("slide_id", observed=True)["patient"].nunique()
        multi = per_slide[per_slide > 1].index.tolist()
        if multi:
            problems.append(f"obs['patient']: expected one patient per slide, found slides "
                            f"with several: {multi[:5]}")
    if not problems and obs.duplicated(subset=["slide_id", "array_row", "array_col"]).any():
        dup = int(obs.duplicated(subset=["slide_id", "array_row", "array_col"]).sum())
        problems.append(f"obs[array_row, array_col]: expected unique spots per slide, found "
                        f"{dup} duplicated positions")
    return problems


def raw_from_anndata(adata: ad.AnnData, source: str,
                     patches_on_disk: PatchRows | None = None) -> RawData:
    """Return the ``RawData`` of an AnnData of raw counts; raise ``RawInputError`` listing gaps.

    Counts come from ``layers['counts']`` when present, else ``X``. ``patches_on_disk`` stands
    for ``obsm['patches_scale_1.0']`` when the file was opened without its patches.
    """
    problems: list[str] = []
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise RawInputError(source, f"expected spots and genes, found {adata.n_obs} x "
                            f"{adata.n_vars}")
    if "counts" in adata.layers:
        matrix, where = adata.layers["counts"], "layers['counts']"
    elif adata.X is not None:
        matrix, where = adata.X, "X"
    else:
        raise RawInputError(source, "expected raw counts in layers['counts'] or X, found "
                            "neither")
    problems.extend(_check_obs(adata.obs, source))
    if "gene_length" not in adata.var.columns:
        problems.append("var['gene_length']: expected gene lengths in bases (TPM needs them), "
                        "found no such column")
    if not adata.var_names.is_unique:
        dupes = adata.var_names[adata.var_names.duplicated()].unique().tolist()[:5]
        problems.append(f"var_names: expected unique gene names, found duplicates {dupes}")
    spatial = adata.obsm.get(SPATIAL_KEY)
    if spatial is None or np.asarray(spatial).shape != (adata.n_obs, 2):
        found = "none" if spatial is None else f"shape {np.asarray(spatial).shape}"
        problems.append(f"obsm['spatial']: expected pixel coordinates ({adata.n_obs}, 2), "
                        f"found {found}")
    patches = adata.obsm.get(PATCHES_KEY) if patches_on_disk is None else patches_on_disk
    shape = patch_shape_of(adata, patches)
    if patches is None:
        problems.append(f"obsm['{PATCHES_KEY}']: expected flattened uint8 patches "
                        "(spots x H*W*3), found none")
    elif patches.dtype != np.uint8:
        problems.append(f"obsm['{PATCHES_KEY}']: expected dtype uint8, found {patches.dtype}")
    elif patches.ndim != 2 or patches.shape[0] != adata.n_obs:
        problems.append(f"obsm['{PATCHES_KEY}']: expected ({adata.n_obs}, H*W*3), found "
                        f"shape {patches.shape}")
    elif shape is None or patches.shape[1] != shape[0] * shape[1] * shape[2]:
        problems.append(f"uns['patch_shape']: expected [H, W, 3] matching the patches' "
                        f"{patches.shape[1]} columns, found {adata.uns.get('patch_shape')}")
    if problems or patches is None or shape is None:  # (either None is listed in problems)
        raise RawInputError(source, "not a usable raw dataset:\n" +
                            "\n".join(f"  - {p}" for p in problems))
    counts = _as_csr_counts(matrix, where, source)
    obs = adata.obs.copy()
    obs["array_row"] = obs["array_row"].astype(np.int64)
    obs["array_col"] = obs["array_col"].astype(np.int64)
    for column in ("slide_id", "patient", "split"):
        obs[column] = obs[column].astype(str)
    var = adata.var.copy()
    var["gene_length"] = pd.to_numeric(var["gene_length"], errors="coerce").astype(np.float64)
    return RawData(counts=counts, obs=obs, var=var,
                   spatial=np.asarray(spatial, dtype=np.float64),
                   patches=(patches if isinstance(patches, PatchRows)
                            else np.ascontiguousarray(np.asarray(patches))),
                   patch_shape=shape,
                   source=source)
