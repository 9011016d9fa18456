"""Schema of a processed SpaRED dataset ``.h5ad`` and its validation.

The schema is SpaRED's own (docs/ARCHITECTURE.md, "Dataset schema"), so a SpaRED-processed
file validates as it is: extra obs columns, layers, obsm and uns keys are allowed; the ones
listed here are required. Validation reports every problem at once, one ``SchemaProblem`` each.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import pandas as pd

from evaluator.core.arrays import dense
from evaluator.core.errors import InputFileError, SchemaError, SchemaProblem
from evaluator.datasets.splits import SPLIT_NAMES

if TYPE_CHECKING:
    import anndata as ad

OBS_COLUMNS: tuple[str, ...] = ("split", "slide_id", "patient", "array_row", "array_col")
EXPRESSION_LAYERS: tuple[str, ...] = ("counts", "tpm", "log1p", "d_log1p", "c_log1p", "c_d_log1p")
COMPLETED_LAYER = "c_t_log1p"
MASK_LAYER = "mask"
PATCHES_KEY = "patches_scale_1.0"
SPATIAL_KEY = "spatial"
ALLOWED_GENE_COUNTS = (128, 32)


def read_h5ad(path: Path | str, *, backed: bool = False) -> ad.AnnData:
    """Read an ``.h5ad`` file; a missing or unreadable file raises ``InputFileError``."""
    # why here: anndata takes ~0.5 s to import; the web app (through evaluator.datasets) loads this
    # module without reading an .h5ad file
    import anndata as ad

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "expected an existing .h5ad file, found nothing at this path")
    try:
        with warnings.catch_warnings():
            # Old SpaRED files trigger anndata's format-upgrade warnings; they are harmless.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            return ad.read_h5ad(path, backed="r" if backed else None)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputFileError(
            path, f"expected an AnnData .h5ad (HDF5) file, found something unreadable ({exc})"
        ) from exc


class PatchArray(Protocol):
    """What is read of a patch array: an in-memory array or an HDF5 dataset left on disk."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def ndim(self) -> int: ...

    @property
    def dtype(self) -> Any: ...




def _obsm_patches(adata: ad.AnnData, patches: PatchArray | None) -> PatchArray | None:
    return patches if patches is not None else cast("PatchArray | None",
                                                    adata.obsm.get(PATCHES_KEY))


def patch_shape_of(adata: ad.AnnData, patches: PatchArray | None = None
                   ) -> tuple[int, int, int] | None:
    """Return ``uns['patch_shape']`` as (H, W, 3), inferred for square patches when absent.

    ``patches`` stands in for ``obsm['patches_scale_1.0']`` when it is kept on disk (an HDF5
    dataset from ``open_processed``): only its shape is read.
    """
    shape = adata.uns.get("patch_shape")
    if shape is not None:
        values = [int(v) for v in np.asarray(shape).ravel().tolist()]
        return (values[0], values[1], values[2]) if len(values) == 3 else None
    patches = _obsm_patches(adata, patches)
    if patches is None or patches.ndim != 2:
        return None
    side = round((patches.shape[1] / 3) ** 0.5)
    return (side, side, 3) if side * side * 3 == patches.shape[1] else None


def validate_dataset(
    adata: ad.AnnData, *, expected_genes: int | None = None, require_completed: bool = False,
    patches: PatchArray | None = None,
) -> list[SchemaProblem]:
    """Return every way ``adata`` breaks the processed-dataset schema (empty list: valid).

    ``expected_genes`` checks the gene count against the registry's (128 or 32).
    ``require_completed`` also requires the SpaCKLE-completed layer ``c_t_log1p``.
    ``patches`` is the patches' on-disk dataset when ``adata`` was opened without them
    (``open_processed``): their shape and dtype are checked, no pixel is read.
    """
    problems: list[SchemaProblem] = []
    add = problems.append
    n_obs, n_vars = adata.n_obs, adata.n_vars
    if n_obs == 0 or n_vars == 0:
        add(SchemaProblem("shape", "at least one spot and one gene", f"{n_obs} x {n_vars}"))
        return problems

    problems.extend(_validate_obs(adata.obs))

    if not adata.var_names.is_unique:
        dupes = adata.var_names[adata.var_names.duplicated()].unique().tolist()[:5]
        add(SchemaProblem("var_names", "unique gene names", f"duplicates {dupes}"))
    if expected_genes is not None and n_vars != expected_genes:
        add(SchemaProblem("var_names", f"{expected_genes} genes (registry)", f"{n_vars} genes"))
    elif expected_genes is None and n_vars not in ALLOWED_GENE_COUNTS:
        add(SchemaProblem("var_names", "128 or 32 genes", f"{n_vars} genes"))
    if "gene_length" not in adata.var.columns:
        add(SchemaProblem("var['gene_length']", "a column of gene lengths (for TPM)", "none"))
    else:
        lengths = pd.to_numeric(adata.var["gene_length"], errors="coerce").to_numpy()
        if not np.all(np.isfinite(lengths) & (lengths > 0)):
            bad = int(np.sum(~(np.isfinite(lengths) & (lengths > 0))))
            add(SchemaProblem("var['gene_length']", "positive finite numbers", f"{bad} bad values"))

    layers = (*EXPRESSION_LAYERS, COMPLETED_LAYER) if require_completed else EXPRESSION_LAYERS
    for name in layers:
        if name not in adata.layers:
            add(SchemaProblem(f"layers['{name}']", "a numeric layer", "none"))
            continue
        values = dense(adata.layers[name])
        if values.shape != (n_obs, n_vars):
            add(SchemaProblem(f"layers['{name}']", f"shape {(n_obs, n_vars)}", f"{values.shape}"))
        elif not np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_:
            add(SchemaProblem(f"layers['{name}']", "a numeric dtype", str(values.dtype)))
        elif not np.all(np.isfinite(values)):
            count = int(np.sum(~np.isfinite(values)))
            add(SchemaProblem(f"layers['{name}']", "finite values", f"{count} NaN/inf values"))
    if COMPLETED_LAYER in adata.layers and not require_completed:
        values = dense(adata.layers[COMPLETED_LAYER])
        if values.shape != (n_obs, n_vars) or not np.all(np.isfinite(values)):
            add(SchemaProblem(f"layers['{COMPLETED_LAYER}']",
                              f"finite values of shape {(n_obs, n_vars)}",
                              f"shape {values.shape} or non-finite values"))

    problems.extend(_validate_mask(adata))
    problems.extend(_validate_obsm(adata, patches))
    return problems


def _validate_obs(obs: pd.DataFrame) -> list[SchemaProblem]:
    problems: list[SchemaProblem] = []
    missing = [c for c in OBS_COLUMNS if c not in obs.columns]
    for column in missing:
        problems.append(SchemaProblem(f"obs['{column}']", "a column", "none"))
    if "split" in obs.columns:
        values = set(obs["split"].astype(str).unique().tolist())
        unknown = sorted(values - set(SPLIT_NAMES))
        if unknown:
            problems.append(SchemaProblem("obs['split']", "values in {train, val, test}",
                                          f"{unknown}"))
        if "train" not in values:
            problems.append(SchemaProblem("obs['split']", "some 'train' spots", "none"))
        if not values & {"val", "test"}:
            problems.append(SchemaProblem("obs['split']", "some 'val' or 'test' spots", "none"))
    for column in ("array_row", "array_col"):
        if column in obs.columns:
            coords = pd.to_numeric(obs[column], errors="coerce").to_numpy(dtype=float)
            if not np.all(np.isfinite(coords)) or np.any(coords < 0) or np.any(coords % 1):
                problems.append(SchemaProblem(f"obs['{column}']", "non-negative integers",
                                              f"values such as {obs[column].iloc[0]!r}"))
    if {"slide_id", "patient"} <= set(obs.columns):
        per_slide = obs.groupby("slide_id", observed=True)["patient"].nunique()
        multi = per_slide[per_slide > 1].index.tolist()
        if multi:
            problems.append(SchemaProblem("obs['patient']", "one patient per slide",
                                          f"slides with several: {multi[:5]}"))
    if {"slide_id", "array_row", "array_col"} <= set(obs.columns) and not problems:
        dup = obs.duplicated(subset=["slide_id", "array_row", "array_col"])
        if dup.any():
            problems.append(SchemaProblem("obs[array_row, array_col]", "unique spots per slide",
                                          f"{int(dup.sum())} duplicated positions"))
    return problems


def _validate_mask(adata: ad.AnnData) -> list[SchemaProblem]:
    if MASK_LAYER not in adata.layers:
        return [SchemaProblem("layers['mask']", "a boolean layer (True = measured)", "none")]
    mask = dense(adata.layers[MASK_LAYER])
    if mask.shape != adata.shape:
        return [SchemaProblem("layers['mask']", f"shape {adata.shape}", f"{mask.shape}")]
    if mask.dtype != np.bool_:
        return [SchemaProblem("layers['mask']", "dtype bool", str(mask.dtype))]
    if "tpm" in adata.layers:
        tpm = dense(adata.layers["tpm"])
        if tpm.shape == mask.shape:
            mismatched = int(np.sum(mask != (tpm != 0)))
            if mismatched:
                return [SchemaProblem("layers['mask']", "mask == (tpm != 0)",
                                      f"{mismatched} entries that differ")]
    return []


def _validate_obsm(adata: ad.AnnData, patches: PatchArray | None = None
                   ) -> list[SchemaProblem]:
    problems: list[SchemaProblem] = []
    spatial = adata.obsm.get(SPATIAL_KEY)
    if spatial is None:
        problems.append(SchemaProblem("obsm['spatial']", "pixel coordinates (n_spots x 2)", "none"))
    else:
        coords = np.asarray(spatial)
        if coords.ndim != 2 or coords.shape[1] != 2:
            problems.append(SchemaProblem("obsm['spatial']", "shape (n_spots, 2)",
                                          f"{coords.shape}"))
        elif not np.all(np.isfinite(coords.astype(float))):
            problems.append(SchemaProblem("obsm['spatial']", "finite coordinates", "NaN/inf"))
    patches = _obsm_patches(adata, patches)
    if patches is None:
        problems.append(SchemaProblem(f"obsm['{PATCHES_KEY}']",
                                      "flattened uint8 patches (n_spots x H*W*3)", "none"))
        return problems
    if patches.dtype != np.uint8:
        problems.append(SchemaProblem(f"obsm['{PATCHES_KEY}']", "dtype uint8",
                                      str(patches.dtype)))
    if patches.shape[0] != adata.n_obs:
        problems.append(SchemaProblem(f"obsm['{PATCHES_KEY}']",
                                      f"{adata.n_obs} rows (one per spot)",
                                      f"shape {patches.shape}"))
    shape = patch_shape_of(adata, patches)
    if shape is None or shape[2] != 3:
        found = adata.uns.get("patch_shape", "none (and patches are not square RGB)")
        problems.append(SchemaProblem("uns['patch_shape']", "[H, W, 3]", f"{found}"))
    elif patches.ndim != 2 or patches.shape[1] != shape[0] * shape[1] * 3:
        problems.append(SchemaProblem(f"obsm['{PATCHES_KEY}']",
                                      f"{shape[0] * shape[1] * 3} columns (H*W*3 of {shape})",
                                      f"shape {patches.shape}"))
    return problems


def check_dataset(
    adata: ad.AnnData,
    source: str,
    *,
    expected_genes: int | None = None,
    require_completed: bool = False,
    patches: PatchArray | None = None,
) -> None:
    """Raise ``SchemaError`` listing every problem of ``adata`` (named ``source``), if any."""
    problems = validate_dataset(
        adata, expected_genes=expected_genes, require_completed=require_completed,
        patches=patches,
    )
    if problems:
        raise SchemaError(source, problems)
