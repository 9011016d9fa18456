"""The whole pipeline on small raw counts, each layer against a direct computation.

The written-out references of the median filter, Moran's I and ComBat are those of mode
``exact-hex`` (hexagonal rings, scanpy's ComBat); mode ``spared`` (the default) is compared
with SpaRED's own library in ``tests/datasets/spared_reference``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

from evaluator.completion import adaptive_median_filter
from evaluator.datasets.pipeline import (
    STEP_NAMES,
    PipelineError,
    default_config,
    process_raw,
    raw_from_anndata,
)
from evaluator.datasets.schema import check_dataset
from tests.completion.reference import loop_adaptive_median_filter
from tests.datasets.pipeline.conftest import moran_formula

DATASET = "villacampa_lung_organoid"


def _direct(raw_vlo: Any) -> dict[str, Any]:
    """SpaRED's filtering and normalization written out on dense arrays."""
    counts = raw_vlo.X.toarray().astype(np.float64)
    obs = raw_vlo.obs
    spot_total = counts.sum(axis=1)
    spots = np.flatnonzero((spot_total > 10) & (spot_total < 1_000_000))
    kept = counts[spots]
    slides = obs["slide_id"].astype(str).to_numpy()[spots]
    exp_frac = np.min([np.mean(kept[slides == s] > 0, axis=0) for s in np.unique(slides)],
                      axis=0)
    glob = np.mean(kept > 0, axis=0)
    gene_total = kept.sum(axis=0)
    by_counts = np.flatnonzero((gene_total > 10) & (gene_total < 1_000_000))
    # SpaRED: sort by exp_frac (descending), running mean of glob_exp_frac, last index >= 0.7.
    frame = pd.DataFrame({"exp": exp_frac[by_counts], "glob": glob[by_counts]},
                         index=by_counts).sort_values("exp", ascending=False, kind="stable")
    running = frame["glob"].cumsum() / np.arange(1, len(frame) + 1)
    last = np.flatnonzero(running.to_numpy() >= 0.7)[-1]
    genes = np.sort(frame.index.to_numpy()[: last + 1])
    kept = kept[:, genes]
    nonempty = kept.sum(axis=1) > 0
    spots, kept = spots[nonempty], kept[nonempty]
    lengths = raw_vlo.var["gene_length"].to_numpy(np.float64)[genes]
    per_length = kept / lengths
    tpm = per_length / per_length.sum(axis=1, keepdims=True) * 1e6
    return {"spots": spots, "genes": genes, "counts": kept, "tpm": tpm,
            "log1p": np.log2(tpm + 1), "obs": obs.iloc[spots]}


@pytest.fixture(scope="module")
def direct(raw_vlo: Any) -> dict[str, Any]:
    return _direct(raw_vlo)


def test_output_is_a_valid_dataset_with_the_registry_genes(processed_vlo: Any) -> None:
    adata, report = processed_vlo
    check_dataset(adata, "processed", expected_genes=128, require_completed=True)
    assert [r.name for r in report.steps] == list(STEP_NAMES)
    for before, after in zip(report.steps, report.steps[1:], strict=False):
        assert (after.spots_in, after.genes_in) == (before.spots_out, before.genes_out)
    assert report.genes == 128 and report.spots == adata.n_obs
    assert {"c_t_log1p", "c_t_deltas", "deltas", "d_deltas", "c_deltas",
            "c_d_deltas"} <= set(adata.layers)
    assert all(name in report.table() for name in STEP_NAMES)


def test_filters_match_spared_written_out(processed_vlo: Any, raw_vlo: Any,
                                          direct: dict[str, Any]) -> None:
    adata, report = processed_vlo
    assert adata.obs_names.tolist() == raw_vlo.obs_names[direct["spots"]].tolist()
    raw_genes = set(raw_vlo.var_names[direct["genes"]])
    assert set(adata.var_names) <= raw_genes
    assert report.step("filter_genes").genes_out == len(direct["genes"])
    # The generator plants low-quality spots and one spot emptied by the gene filter.
    low = raw_vlo.uns["spared_bench"]["low_quality_spots"]
    assert report.step("filter_spots").spots_in - report.step("filter_spots").spots_out == low
    assert report.step("drop_empty_spots").spots_out == report.step("drop_empty_spots").spots_in - 1
    # Missing data before processing is the raw zero fraction (Table 1's "before").
    dense = raw_vlo.X.toarray()
    assert report.missing_before_pct == pytest.approx(100 * np.mean(dense == 0))
    assert report.missing_after_pct == pytest.approx(100 * (1 - adata.layers["mask"].mean()))


def test_tpm_log_and_mask(processed_vlo_hex: Any, raw_vlo: Any, direct: dict[str, Any]) -> None:
    adata, _ = processed_vlo_hex
    columns = [np.flatnonzero(raw_vlo.var_names[direct["genes"]] == g)[0]
               for g in adata.var_names]
    np.testing.assert_array_equal(adata.layers["counts"], direct["counts"][:, columns])
    np.testing.assert_allclose(adata.layers["tpm"], direct["tpm"][:, columns], rtol=1e-5)
    np.testing.assert_allclose(adata.layers["log1p"], direct["log1p"][:, columns], rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(adata.layers["mask"], direct["tpm"][:, columns] != 0)


def test_median_filter_layer_equals_the_loop_reference(processed_vlo_hex: Any) -> None:
    adata, _ = processed_vlo_hex
    log1p = np.asarray(adata.layers["log1p"])[:, :16]
    obs = adata.obs
    expected = loop_adaptive_median_filter(
        log1p, log1p != 0, obs["array_row"].to_numpy(), obs["array_col"].to_numpy(),
        obs["slide_id"].astype(str).to_numpy(), n_hops=4)
    np.testing.assert_array_equal(adata.layers["d_log1p"][:, :16], expected)


def test_moran_selection_matches_the_formula(processed_vlo_hex: Any, raw_vlo: Any,
                                             direct: dict[str, Any]) -> None:
    adata, report = processed_vlo_hex
    obs = direct["obs"]
    rows, cols = obs["array_row"].to_numpy(), obs["array_col"].to_numpy()
    slides = obs["slide_id"].astype(str).to_numpy()
    log1p = direct["log1p"].astype(np.float32)
    d_log1p = adaptive_median_filter(log1p, log1p != 0, rows, cols, slides)
    per_slide = np.array([[moran_formula(d_log1p[slides == s, g], rows[slides == s],
                                         cols[slides == s]) for s in np.unique(slides)]
                          for g in range(d_log1p.shape[1])])
    finite = np.isfinite(per_slide)
    scores = np.array([row[ok].mean() if ok.any() else -np.inf
                       for row, ok in zip(per_slide, finite, strict=True)])
    order = np.lexsort((np.arange(scores.size), -scores))[:128]
    assert adata.var_names.tolist() == raw_vlo.var_names[direct["genes"][order]].tolist()
    np.testing.assert_allclose(adata.var["d_log1p_moran"], scores[order], rtol=1e-6)
    assert report.step("top_genes").genes_out == 128
    # Moran's I picks the spatially structured genes the generator planted.
    kinds = adata.var["synthetic_kind"].astype(str)
    assert (kinds == "structured").mean() >= 0.9


def test_combat_equals_scanpy_on_the_same_data(processed_vlo_hex: Any) -> None:
    import anndata as ad

    adata, _ = processed_vlo_hex
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import scanpy as sc

        for source, target in (("log1p", "c_log1p"), ("d_log1p", "c_d_log1p")):
            data = ad.AnnData(X=np.asarray(adata.layers[source], dtype=np.float64),
                              obs=pd.DataFrame({"slide_id": adata.obs["slide_id"].astype(str)
                                                .to_numpy()}, index=adata.obs_names))
            expected = sc.pp.combat(data, key="slide_id", inplace=False)
            np.testing.assert_allclose(adata.layers[target], expected, rtol=1e-4, atol=1e-4)


def test_deltas_and_spackle(processed_vlo: Any) -> None:
    adata, _ = processed_vlo
    train = adata.obs["split"].astype(str).to_numpy() == "train"
    for source, target in (("log1p", "deltas"), ("d_log1p", "d_deltas"),
                           ("c_log1p", "c_deltas"), ("c_d_log1p", "c_d_deltas"),
                           ("c_t_log1p", "c_t_deltas")):
        values = np.asarray(adata.layers[source], dtype=np.float64)
        mean = values[train].mean(axis=0)
        np.testing.assert_allclose(adata.var[f"{source}_avg_exp"], mean, rtol=1e-6)
        np.testing.assert_allclose(adata.layers[target], values - mean, atol=1e-4)
    mask = adata.layers["mask"]
    np.testing.assert_allclose(adata.layers["c_t_log1p"][mask], adata.layers["c_d_log1p"][mask],
                               atol=1e-5)


def test_gene_blocks_and_moran_backend_do_not_change_the_result(raw_vlo: Any,
                                                                 tmp_path: Any) -> None:
    raw = raw_from_anndata(raw_vlo, "raw_vlo")
    config = default_config(DATASET).model_copy(update={"spackle": False, "mode": "exact-hex"})
    whole, _ = process_raw(raw, config, cache_dir=tmp_path)
    small = config.model_copy(update={"chunk_mb": 0.1, "moran_backend": "numpy"})
    blocks, report = process_raw(raw, small, cache_dir=tmp_path)
    assert "blocks of " in report.step("median_filter").note
    assert "blocks of 1 " not in report.step("median_filter").note
    assert report.step("moran").note.startswith("numpy")
    assert blocks.var_names.tolist() == whole.var_names.tolist()
    for layer in whole.layers:
        np.testing.assert_array_equal(blocks.layers[layer], whole.layers[layer])
    np.testing.assert_allclose(blocks.var["d_log1p_moran"], whole.var["d_log1p_moran"],
                               rtol=1e-10)
    assert "c_t_log1p" not in whole.layers


def test_too_strict_filters_fail_clearly(raw_vlo: Any, tmp_path: Any) -> None:
    raw = raw_from_anndata(raw_vlo, "raw_vlo")
    config = default_config(DATASET).model_copy(update={"real_data_percentage": 0.99,
                                                        "spackle": False})
    with pytest.raises(PipelineError, match="step filter_genes: expected at least 128 genes"):
        process_raw(raw, config, cache_dir=tmp_path)


def test_gene_blocks_do_not_change_the_spared_mode_result(raw_vlo: Any, tmp_path: Any) -> None:
    raw = raw_from_anndata(raw_vlo, "raw_vlo")
    config = default_config(DATASET).model_copy(update={"spackle": False})
    assert config.mode == "spared"
    whole, report = process_raw(raw, config, cache_dir=tmp_path)
    blocks, _ = process_raw(raw, config.model_copy(update={"chunk_mb": 0.1}), cache_dir=tmp_path)
    assert report.step("moran").note.startswith("spared")
    assert blocks.var_names.tolist() == whole.var_names.tolist()
    for layer in whole.layers:
        np.testing.assert_array_equal(blocks.layers[layer], whole.layers[layer])


def test_noisy_layers_put_back_the_missing_values(processed_vlo: Any) -> None:
    adata, _ = processed_vlo
    mask = np.asarray(adata.layers["mask"])
    for layer in ("c_d_log1p", "c_t_log1p", "c_d_deltas", "c_t_deltas"):
        noisy = np.asarray(adata.layers[f"noisy_{layer}"])
        np.testing.assert_array_equal(noisy[mask], np.asarray(adata.layers[layer])[mask])
        if "deltas" in layer:
            mean = adata.var[f"{layer.replace('deltas', 'log1p')}_avg_exp"].to_numpy()
            expected = np.broadcast_to(-mean.astype(np.float32), noisy.shape)[~mask]
            np.testing.assert_array_equal(noisy[~mask], expected)
            np.testing.assert_array_equal(adata.var[f"used_mean_{layer}"], mean)
        else:
            assert (noisy[~mask] == 0).all()
