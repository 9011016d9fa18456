"""Array helpers shared by the layers above: one way to read an AnnData matrix densely."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["dense"]


def dense(matrix: Any) -> np.ndarray:
    """Return ``matrix`` (numpy array, scipy sparse matrix or array-like) as a numpy array."""
    if hasattr(matrix, "toarray"):  # scipy.sparse, without importing scipy for dense input
        return np.asarray(matrix.toarray())
    return np.asarray(matrix)
