"""Completion on AnnData files: read the inputs, write the completed layers.

Layer conventions (docs/ARCHITECTURE.md, "Dataset schema"): ``d_log1p`` = median completion
of ``log1p``; ``c_t_log1p`` = SpaCKLE completion of ``c_d_log1p``. ``layers['mask']`` is True
where a value was measured (``tpm != 0``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from evaluator.completion.errors import CompletionInputError
from evaluator.completion.median import adaptive_median_filter
from evaluator.completion.spackle import SpackleConfig, SpotData, train_or_load, train_spackle
from evaluator.core.arrays import dense

if TYPE_CHECKING:
    import anndata as ad

Method = Literal["median", "spackle"]
DEFAULT_LAYERS: dict[str, tuple[str, str]] = {
    "median": ("log1p", "d_log1p"),
    "spackle": ("c_d_log1p", "c_t_log1p"),
}


@dataclass
class CompletionReport:
    """What ``add_completion_layers`` did: layers added, whether SpaCKLE came from the cache."""

    added: list[str] = field(default_factory=list)
    cache_hit: bool | None = None
    checkpoint: Path | None = None


def spot_data_from_anndata(adata: ad.AnnData, layer: str, *, source: str = "AnnData",
                           use_split: bool = True) -> SpotData:
    """Return the completion inputs of ``adata``: ``layers[layer]``, its mask and grid.

    The mask is ``layers['mask']``, else ``layers['tpm'] != 0``. ``obs['slide_id']`` is
    optional (one slide when absent), ``obs['split']`` is used when present. Raises
    ``CompletionInputError`` naming ``source`` and the missing or malformed key.
    """
    if layer not in adata.layers:
        raise CompletionInputError(
            f"{source}: expected layer {layer!r}, found layers {sorted(adata.layers.keys())}"
        )
    expression = dense(adata.layers[layer])
    if not np.issubdtype(expression.dtype, np.number):
        raise CompletionInputError(
            f"{source}: layers[{layer!r}]: expected numbers, found dtype {expression.dtype}"
        )
    mask = read_mask(adata, source=source)
    for key in ("array_row", "array_col"):
        if key not in adata.obs.columns:
            raise CompletionInputError(
                f"{source}: obs[{key!r}]: expected Visium grid coordinates (array_row, "
                f"array_col) of every spot, found no such column (obs has "
                f"{list(adata.obs.columns)})"
            )
        column = adata.obs[key].to_numpy()
        if not np.issubdtype(column.dtype, np.number) or not np.isfinite(column).all():
            raise CompletionInputError(
                f"{source}: obs[{key!r}]: expected integer grid coordinates, found "
                f"{column.dtype} with missing or non-numeric values"
            )
    slides = (adata.obs["slide_id"].astype(str).to_numpy() if "slide_id" in adata.obs.columns
              else np.zeros(adata.n_obs, dtype=str))
    split = (adata.obs["split"].astype(str).to_numpy()
             if use_split and "split" in adata.obs.columns else None)
    return SpotData(expression=expression, mask=mask,
                    array_row=adata.obs["array_row"].to_numpy(),
                    array_col=adata.obs["array_col"].to_numpy(), slide_ids=slides, split=split,
                    genes=[str(g) for g in adata.var_names])


def read_mask(adata: ad.AnnData, *, source: str = "AnnData") -> np.ndarray:
    """Return ``layers['mask']`` as bool, else ``layers['tpm'] != 0``; raise if neither."""
    if "mask" in adata.layers:
        mask = dense(adata.layers["mask"])
        if mask.dtype != np.bool_:
            if not np.isin(mask, (0, 1)).all():
                raise CompletionInputError(
                    f"{source}: layers['mask']: expected booleans (True = measured), found "
                    f"dtype {mask.dtype} with values other than 0 and 1"
                )
            mask = mask.astype(bool)
        return mask
    if "tpm" in adata.layers:
        return dense(adata.layers["tpm"]) != 0
    raise CompletionInputError(
        f"{source}: expected layers['mask'] (True = measured) or layers['tpm'] to derive it "
        f"from, found layers {sorted(adata.layers.keys())}"
    )


def complete_anndata(
    adata: ad.AnnData,
    method: Method,
    *,
    layer: str | None = None,
    out_layer: str | None = None,
    config: SpackleConfig | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
    source: str = "AnnData",
) -> str:
    """Complete ``layers[layer]`` with ``method`` into ``layers[out_layer]``; return out_layer.

    Defaults: median ``log1p -> d_log1p``, spackle ``c_d_log1p -> c_t_log1p``. SpaCKLE trains
    on the ``train`` spots (``val`` picks the best model) and completes every spot; with
    ``cache_dir`` an identical (data, config) reuses the trained model.
    """
    if method not in DEFAULT_LAYERS:
        raise CompletionInputError(
            f"method: expected one of {sorted(DEFAULT_LAYERS)}, found {method!r}"
        )
    default_in, default_out = DEFAULT_LAYERS[method]
    layer = layer or default_in
    out_layer = out_layer or default_out
    data = spot_data_from_anndata(adata, layer, source=source)
    if method == "median":
        n_hops = (config or SpackleConfig()).n_hops
        completed = adaptive_median_filter(data.expression, data.mask, data.array_row,
                                           data.array_col, data.slide_ids, n_hops=n_hops)
    elif cache_dir is not None:
        trained, _, _ = train_or_load(data, config, cache_dir, progress=progress)
        completed = trained.complete(data)
    else:
        completed = train_spackle(data, config, progress=progress).complete(data)
    adata.layers[out_layer] = completed
    return out_layer


def add_completion_layers(
    adata: ad.AnnData,
    *,
    cache_dir: Path,
    data_hash: str,
    config: SpackleConfig | None = None,
    progress: bool = True,
    source: str = "AnnData",
) -> CompletionReport:
    """Add ``d_log1p`` and ``c_t_log1p`` to a processed dataset where they are absent.

    ``d_log1p`` = adaptive median filter of ``log1p``; ``c_t_log1p`` = SpaCKLE completion of
    ``c_d_log1p`` (measured entries unchanged, missing ones predicted). SpaCKLE is trained once
    per (``data_hash``, data content, config) and cached under ``cache_dir/spackle``. Layers
    already present are left alone. Progress goes to stderr when ``progress``.
    """
    report = CompletionReport()
    if "d_log1p" not in adata.layers:
        complete_anndata(adata, "median", config=config, source=source)
        report.added.append("d_log1p")
    if "c_t_log1p" not in adata.layers:
        data = spot_data_from_anndata(adata, "c_d_log1p", source=source)
        if progress:
            print(f"SpaCKLE completion of {source} ({data.n_spots} spots, {data.n_genes} "
                  "genes)", file=sys.stderr, flush=True)
        trained, hit, path = train_or_load(data, config, cache_dir, data_hash=data_hash,
                                           progress=progress)
        if progress:
            what = "reused cached model" if hit else "trained"
            print(f"SpaCKLE: {what} ({path.name}, best val MSE {trained.best_val_mse:.4f})",
                  file=sys.stderr, flush=True)
        adata.layers["c_t_log1p"] = trained.complete(data)
        report.added.append("c_t_log1p")
        report.cache_hit, report.checkpoint = hit, path
    return report


