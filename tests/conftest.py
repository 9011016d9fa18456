"""Shared fixtures: small seeded synthetic datasets and a release built from them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TEST_SPACKLE_STEPS = 20
"""SpaCKLE's training steps in the tests' releases and pipelines (SPARED_BENCH_SPACKLE_STEPS)."""


def build_test_release(*args, **kwargs):
    """``build_release`` with the tests' short SpaCKLE budget (``TEST_SPACKLE_STEPS``)."""
    from evaluator.datasets.release import build_release, completion_config

    kwargs.setdefault("completion", completion_config(TEST_SPACKLE_STEPS))
    return build_release(*args, **kwargs)


TINY_DATASETS = (
    "villacampa_lung_organoid",
    "mirzazadeh_human_prostate_cancer",
    "mirzazadeh_human_colon_p1",
)


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep every test's data out of the user's store; train short SpaCKLE models in releases."""
    os.environ["SPARED_BENCH_HOME"] = str(tmp_path_factory.mktemp("spared_bench_home"))
    os.environ.setdefault("SPARED_BENCH_SPACKLE_STEPS", str(TEST_SPACKLE_STEPS))


@pytest.fixture(autouse=True, scope="session")
def _quiet_threads() -> None:
    """Keep numeric libraries to one thread each: CI machines have two cores."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


@pytest.fixture(scope="session")
def tiny_processed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the three ``tiny`` synthetic processed datasets (seed 0); treat as read-only."""
    from evaluator.datasets.synthetic import generate

    out = tmp_path_factory.mktemp("tiny_processed")
    generate("tiny", out, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory: pytest.TempPathFactory, tiny_processed_dir: Path):
    """A release built from the tiny datasets; treat as read-only."""
    releases = tmp_path_factory.mktemp("releases")
    release, _ = build_test_release(sorted(tiny_processed_dir.glob("*.h5ad")), releases,
                                    label="tiny", cache_dir=tmp_path_factory.mktemp("cache"))
    return release
