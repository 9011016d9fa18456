"""ComBat batch correction (Johnson et al. 2007): pyComBat (SpaRED's) or scanpy's.

``pycombat_correct`` calls pyComBat (``combat==0.3.3``, GPL-3, a dependency, not copied), as
SpaRED's ``combat_transformation`` does; ``combat_correct`` calls ``scanpy.pp.combat`` (the
``exact-hex`` mode). They differ by up to ~0.7 on log2(TPM+1) layers (different priors' fits).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import anndata as ad
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
    labels = pd.Categorical(np.asarray(batches).astype(str))
    out = np.asarray(values, dtype=np.float64)
    if len(labels.categories) < 2:
        return out.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # why here: scanpy (science extra) takes seconds to import and warns while importing
        # (silenced here)
        import scanpy as sc

        frame = pd.DataFrame({"batch": labels}, index=[str(i) for i in range(out.shape[0])])
        adata = ad.AnnData(X=out.copy(), obs=frame)
        corrected = np.asarray(sc.pp.combat(adata, key="batch", inplace=False), dtype=np.float64)
    bad_genes = ~np.all(np.isfinite(corrected), axis=0)
    corrected[:, bad_genes] = out[:, bad_genes]
    return corrected.astype(np.float32)


def pycombat_correct(values: np.ndarray, batches: npt.ArrayLike) -> np.ndarray:
    """Return pyComBat-corrected ``values`` (spots x genes), as SpaRED's ``combat_transformation``.

    ``pycombat(genes x spots frame, batch list, par_prior=True)`` in float64. As in
    ``combat_correct``: a single batch comes back unchanged, and genes whose correction is not
    finite (constant within a batch) come back uncorrected — SpaRED would keep their NaNs.
    pyComBat's progress lines on stdout are swallowed.
    """
    # why here: pyComBat (science extra) only for SpaRED mode's ComBat; like scanpy, loaded when
    # used
    from combat.pycombat import pycombat

    labels = np.asarray(batches).astype(str)
    out = np.asarray(values, dtype=np.float64)
    if len(np.unique(labels)) < 2:
        return out.astype(np.float32)
    frame = pd.DataFrame(out.T, index=[str(g) for g in range(out.shape[1])],
                         columns=[str(i) for i in range(out.shape[0])])
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        corrected = np.asarray(pycombat(frame, labels.tolist(), par_prior=True),
                               dtype=np.float64).T
    bad_genes = ~np.all(np.isfinite(corrected), axis=0)
    corrected[:, bad_genes] = out[:, bad_genes]
    return corrected.astype(np.float32)
