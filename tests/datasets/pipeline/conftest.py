"""Fixtures of the pipeline tests: small seeded raw datasets and one processed run of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluator.core.visium import HEX_OFFSETS

RAW_SPOTS = 200


@pytest.fixture(scope="session")
def raw_vlo() -> Any:
    """Raw counts imitating villacampa_lung_organoid (4 slides, 128 genes), ~200 spots."""
    from evaluator.datasets.synthetic_raw import generate_raw_dataset

    return generate_raw_dataset("villacampa_lung_organoid", "tiny", seed=3, patch_size=4,
                                max_spots=RAW_SPOTS)


@pytest.fixture(scope="session")
def processed_vlo(raw_vlo: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """(processed AnnData, report) of ``raw_vlo`` with the default configuration."""
    from evaluator.datasets.pipeline import default_config, process_raw, raw_from_anndata
    from evaluator.datasets.release import completion_config
    from tests.conftest import TEST_SPACKLE_STEPS

    raw = raw_from_anndata(raw_vlo, "raw_vlo")
    return process_raw(raw, default_config("villacampa_lung_organoid"),
                       cache_dir=tmp_path_factory.mktemp("cache"),
                       completion=completion_config(TEST_SPACKLE_STEPS))


@pytest.fixture(scope="session")
def processed_vlo_hex(raw_vlo: Any, tmp_path_factory: pytest.TempPathFactory
                      ) -> tuple[Any, Any]:
    """(processed AnnData, report) of ``raw_vlo`` in mode ``exact-hex``, without SpaCKLE."""
    from evaluator.datasets.pipeline import default_config, process_raw, raw_from_anndata

    raw = raw_from_anndata(raw_vlo, "raw_vlo")
    config = default_config("villacampa_lung_organoid").model_copy(
        update={"mode": "exact-hex", "spackle": False})
    return process_raw(raw, config, cache_dir=tmp_path_factory.mktemp("cache_hex"))


def moran_formula(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    """Moran's I of one gene on one slide, written out: hexagonal neighbours, row-standardized.

    ``I = n / S0 * sum_ij w_ij z_i z_j / sum_i z_i^2``, ``w`` = 1/deg(i) for the hexagonal
    neighbours of ``i`` (0 for a spot without neighbours), ``S0 = sum_ij w_ij``.
    """
    n = values.size
    position = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(rows, cols, strict=True))}
    weights = np.zeros((n, n))
    for i in range(n):
        for dr, dc in HEX_OFFSETS:
            j = position.get((int(rows[i]) + dr, int(cols[i]) + dc))
            if j is not None:
                weights[i, j] = 1.0
    degree = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, degree, out=np.zeros_like(weights), where=degree > 0)
    z = values.astype(np.float64) - values.mean()
    if np.ptp(values) <= 1e-5 * (1 + np.abs(values).max()):
        return float("nan")  # a constant gene (up to rounding) has no Moran's I
    return float(n / weights.sum() * (z @ weights @ z) / (z @ z))


def write_h5(path: Path, adata: Any) -> Path:
    """Write an AnnData with the store's atomic writer; return the path."""
    from evaluator.datasets.store import write_h5ad

    return write_h5ad(adata, path)
