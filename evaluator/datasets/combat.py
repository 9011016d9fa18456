"""ComBat batch correction (Johnson et al. 2007) through scanpy's implementation."""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt
import pandas as pd


def combat_correct(values: np.ndarray, batches: npt.ArrayLike) -> np.ndarray:
    """Return ComBat-corrected ``values`` (spots x genes) for the given batch labels.

    Uses ``scanpy.pp.combat`` (empirical Bayes, parametric priors). Genes that ComBat cannot
    correct — constant within a batch, so their batch variance is zero and the result is not
    finite — are returned uncorrected, because a NaN layer would break every later step.
    With a single batch there is nothing to correct and the values come back unchanged.
    """
    import anndata as ad

    labels = pd.Categorical(np.asarray(batches).astype(str))
    out = np.asarray(values, dtype=np.float64)
    if len(labels.categories) < 2:
        return out.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import scanpy as sc

        frame = pd.DataFrame({"batch": labels}, index=[str(i) for i in range(out.shape[0])])
        adata = ad.AnnData(X=out.copy(), obs=frame)
        corrected = np.asarray(sc.pp.combat(adata, key="batch", inplace=False), dtype=np.float64)
    bad_genes = ~np.all(np.isfinite(corrected), axis=0)
    corrected[:, bad_genes] = out[:, bad_genes]
    return corrected.astype(np.float32)
