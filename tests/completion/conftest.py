"""Fixtures of the completion tests: one tiny synthetic dataset and its completion inputs."""

from __future__ import annotations

import pytest

TINY_NAME = "villacampa_lung_organoid"


@pytest.fixture(scope="session")
def tiny_adata():
    """A tiny synthetic processed dataset (4 slides, train/val/test); treat as read-only."""
    from evaluator.datasets.synthetic import generate_dataset

    return generate_dataset(TINY_NAME, "tiny", seed=0, patch_size=4)


@pytest.fixture(scope="session")
def tiny_data(tiny_adata):
    """The SpaCKLE inputs of ``tiny_adata``: c_d_log1p, mask, grid, slides, splits."""
    from evaluator.completion.layers import spot_data_from_anndata

    return spot_data_from_anndata(tiny_adata, "c_d_log1p", source=TINY_NAME)
