"""SpaRED-like synthetic data: determinism, layout, and the statistical properties claimed."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from evaluator.cli import main
from evaluator.core.visium import hex_neighbors
from evaluator.datasets.registry import get_dataset, load_registry
from evaluator.datasets.schema import read_h5ad, validate_dataset
from evaluator.datasets.splits import hidden_mask
from evaluator.datasets.synthetic import (
    SPOTS_PER_VISIUM_SLIDE,
    assign_splits,
    dataset_rng,
    generate_dataset,
    spots_per_slide,
)
from tests.conftest import TINY_DATASETS


@pytest.fixture(scope="module")
def tiny(tiny_processed_dir: Path) -> dict[str, ad.AnnData]:
    return {name: read_h5ad(tiny_processed_dir / f"{name}.h5ad") for name in TINY_DATASETS}


def test_same_seed_same_data_other_seed_other_data(tiny: dict[str, ad.AnnData]) -> None:
    name = "mirzazadeh_human_colon_p1"
    again = generate_dataset(name, "tiny", seed=0)
    first = tiny[name]
    for layer in first.layers:
        np.testing.assert_array_equal(first.layers[layer], again.layers[layer])
    np.testing.assert_array_equal(first.obsm["patches_scale_1.0"], again.obsm["patches_scale_1.0"])
    assert first.obs_names.tolist() == again.obs_names.tolist()
    other = generate_dataset(name, "tiny", seed=1)
    assert not np.array_equal(first.layers["counts"], other.layers["counts"][: first.n_obs])


@pytest.mark.parametrize("name", TINY_DATASETS)
def test_tiny_datasets_follow_the_schema(tiny: dict[str, ad.AnnData], name: str) -> None:
    adata = tiny[name]
    assert validate_dataset(adata, expected_genes=get_dataset(name).genes) == []
    assert adata.n_obs == 320


@pytest.mark.parametrize("name", TINY_DATASETS)
def test_spots_lie_on_a_visium_grid(tiny: dict[str, ad.AnnData], name: str) -> None:
    obs = tiny[name].obs
    rows, cols = obs["array_row"].to_numpy(), obs["array_col"].to_numpy()
    assert np.all((rows + cols) % 2 == 0)
    assert rows.min() >= 0 and rows.max() < 78 and cols.min() >= 0 and cols.max() < 128
    adjacency = hex_neighbors(rows, cols, obs["slide_id"].astype(str).to_numpy())
    # A compact tissue blob: most spots have all six neighbours.
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    assert np.median(degree) == 6
    xy = tiny[name].obsm["spatial"]
    i, j = adjacency.nonzero()
    distances = np.hypot(*(xy[i] - xy[j]).T)
    np.testing.assert_allclose(distances, distances[0], rtol=1e-6)


@pytest.mark.parametrize("info", load_registry(), ids=lambda d: d.abbreviation)
def test_split_plan_imitates_the_dataset(info) -> None:
    plan = assign_splits(info)
    assert len(plan) == info.slides
    # SpaRED's slide ids, each in its split of the registry's table.
    assert {slide: split for slide, _, split in plan} == info.splits.split_of()
    assert len({p for _, p, _ in plan}) == info.patients
    splits = [s for _, _, s in plan]
    assert "train" in splits
    assert ("test" in splits) == info.has_test_split
    assert info.hidden_split in splits
    if info.generalization == "inter-patient":
        hidden_patients = {p for _, p, s in plan if s == info.hidden_split}
        train_patients = {p for _, p, s in plan if s == "train"}
        assert not hidden_patients & train_patients


def _morans_i(values: np.ndarray, adjacency) -> np.ndarray:
    centred = values - values.mean(axis=0)
    numerator = (centred * (adjacency @ centred)).sum(axis=0) / adjacency.sum()
    return numerator / (centred**2).mean(axis=0)


@pytest.mark.parametrize("name", TINY_DATASETS)
def test_expression_is_spatially_autocorrelated(tiny: dict[str, ad.AnnData], name: str) -> None:
    adata = tiny[name]
    adjacency = hex_neighbors(adata.obs["array_row"], adata.obs["array_col"],
                              adata.obs["slide_id"].astype(str).to_numpy())
    values = adata.layers["log1p"].astype(np.float64)
    observed = np.nanmean(_morans_i(values, adjacency))
    shuffled = np.random.default_rng(0).permutation(values, axis=0)
    control = np.nanmean(_morans_i(shuffled, adjacency))
    assert observed > 0.2
    assert abs(control) < 0.05
    assert observed > control + 0.15


@pytest.mark.parametrize("name", TINY_DATASETS)
def test_dropout_matches_the_registry_rate(tiny: dict[str, ad.AnnData], name: str) -> None:
    adata = tiny[name]
    missing = 1 - adata.layers["mask"].mean()
    assert missing == pytest.approx(get_dataset(name).missing_after_pct / 100, abs=0.02)
    assert np.array_equal(adata.layers["mask"], adata.layers["tpm"] != 0)


def test_counts_are_overdispersed_integers(tiny: dict[str, ad.AnnData]) -> None:
    counts = tiny["villacampa_lung_organoid"].layers["counts"]
    assert np.all(counts >= 0) and np.all(counts == np.round(counts))
    mean, var = counts.mean(axis=0), counts.var(axis=0)
    assert np.mean(var > mean) > 0.9
    tpm = tiny["villacampa_lung_organoid"].layers["tpm"]
    np.testing.assert_allclose(tpm.sum(axis=1), 1e6, rtol=1e-4)
    np.testing.assert_allclose(tiny["villacampa_lung_organoid"].layers["log1p"],
                               np.log2(tpm + 1), rtol=1e-5)


def _patch_features(adata: ad.AnnData) -> np.ndarray:
    side = adata.uns["patch_shape"][0]
    pixels = adata.obsm["patches_scale_1.0"].astype(np.float64).reshape(adata.n_obs, side * side, 3)
    features = np.concatenate([pixels.mean(1), pixels.std(1),
                               (pixels.mean(2) < 120).mean(1, keepdims=True)], axis=1)
    slides = adata.obs["slide_id"].astype(str).to_numpy()
    for slide in np.unique(slides):
        features[slides == slide] -= features[slides == slide].mean(axis=0)
    return features


def _ridge_vs_mean(adata: ad.AnnData) -> tuple[float, float]:
    """Masked MSE on the hidden slides of ridge on patch features and of the training mean."""
    target = adata.layers["c_d_log1p"].astype(np.float64)
    hidden = hidden_mask(adata.obs["split"].to_numpy())
    features = _patch_features(adata)
    mu, sd = features[~hidden].mean(0), features[~hidden].std(0) + 1e-9
    design = np.c_[(features - mu) / sd, np.ones(adata.n_obs)]
    train = design[~hidden]
    weights = np.linalg.solve(train.T @ train + 10 * np.eye(design.shape[1]),
                              train.T @ target[~hidden])
    measured = adata.layers["mask"][hidden]
    truth = target[hidden]
    ridge = float(((design[hidden] @ weights - truth) ** 2)[measured].mean())
    mean = float(((target[~hidden].mean(0) - truth) ** 2)[measured].mean())
    return ridge, mean


@pytest.mark.parametrize("name", TINY_DATASETS)
def test_patches_let_a_simple_model_beat_the_mean(tiny: dict[str, ad.AnnData], name: str) -> None:
    ridge, mean = _ridge_vs_mean(tiny[name])
    assert ridge < 0.97 * mean, (ridge, mean)


def test_patches_are_clearly_informative_at_demo_size() -> None:
    ridge, mean = _ridge_vs_mean(generate_dataset("fan_mouse_olfatory_bulb", "demo", seed=0))
    assert ridge < 0.8 * mean, (ridge, mean)


def test_full_size_has_the_real_spot_and_gene_counts() -> None:
    adata = generate_dataset("villacampa_kidney_organoid", "full", seed=0, patch_size=12)
    info = get_dataset("villacampa_kidney_organoid")
    assert adata.shape == (info.spots, info.genes)
    assert adata.obs["slide_id"].nunique() == info.slides
    assert adata.obsm["patches_scale_1.0"].shape == (info.spots, 12 * 12 * 3)


@pytest.mark.parametrize("info", load_registry(), ids=lambda d: d.abbreviation)
def test_full_size_keeps_every_spot_of_the_registry(info) -> None:
    counts = spots_per_slide(info.spots, info.slides, dataset_rng(info.name, 0))
    assert counts.sum() == info.spots
    assert counts.max() <= SPOTS_PER_VISIUM_SLIDE
    assert len(counts) == info.slides


def test_cli_synth_writes_files_and_rejects_unknown_names(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["data", "synth", "--size", "tiny", "--datasets", "MHCP1",
                 "--out", str(tmp_path), "--seed", "3"]) == 0
    assert (tmp_path / "mirzazadeh_human_colon_p1.h5ad").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert main(["data", "synth", "--datasets", "MHCP9", "--out", str(tmp_path)]) == 2
    assert "unknown dataset 'MHCP9'" in capsys.readouterr().err
