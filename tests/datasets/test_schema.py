"""Validation of processed dataset files against the SpaRED schema."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from evaluator.cli import cli, main
from evaluator.core.errors import InputFileError, SchemaError
from evaluator.core.fsio import sha256_file
from evaluator.datasets.schema import check_dataset, read_h5ad, validate_dataset
from evaluator.datasets.store import import_processed, write_h5ad


@pytest.fixture
def good(tiny_processed_dir: Path) -> ad.AnnData:
    return read_h5ad(tiny_processed_dir / "mirzazadeh_human_colon_p1.h5ad")


def test_synthetic_file_is_valid(good: ad.AnnData) -> None:
    assert validate_dataset(good, expected_genes=32) == []


def _drop_obs(column: str) -> Callable[[ad.AnnData], None]:
    def breaker(a: ad.AnnData) -> None:
        del a.obs[column]
    return breaker


def _set_layer(
    name: str, value: Callable[[ad.AnnData], np.ndarray]
) -> Callable[[ad.AnnData], None]:
    def breaker(a: ad.AnnData) -> None:
        a.layers[name] = value(a)
    return breaker


def _nan_in_log1p(a: ad.AnnData) -> None:
    values = a.layers["c_d_log1p"].copy()
    values[0, 0] = np.nan
    a.layers["c_d_log1p"] = values


def _bad_split(a: ad.AnnData) -> None:
    a.obs["split"] = a.obs["split"].astype(str).replace({"val": "validation"})


def _negative_row(a: ad.AnnData) -> None:
    rows = a.obs["array_row"].to_numpy().copy()
    rows[3] = -1
    a.obs["array_row"] = rows


def _patch_shape(a: ad.AnnData) -> None:
    a.uns["patch_shape"] = [9, 9, 3]


def _float_patches(a: ad.AnnData) -> None:
    a.obsm["patches_scale_1.0"] = a.obsm["patches_scale_1.0"].astype(np.float32)


def _no_spatial(a: ad.AnnData) -> None:
    del a.obsm["spatial"]


def _no_gene_length(a: ad.AnnData) -> None:
    del a.var["gene_length"]


def _mask_inconsistent(a: ad.AnnData) -> None:
    mask = a.layers["mask"].copy()
    mask[0, :] = ~mask[0, :]
    a.layers["mask"] = mask


BROKEN = {
    "no split column": (_drop_obs("split"), "obs['split']", "a column"),
    "unknown split value": (_bad_split, "obs['split']", "validation"),
    "no slide_id": (_drop_obs("slide_id"), "obs['slide_id']", "a column"),
    "negative grid row": (_negative_row, "obs['array_row']", "non-negative integers"),
    "missing layer": (_set_layer("tpm", lambda a: None), "layers['tpm']", "none"),
    "NaN in a layer": (_nan_in_log1p, "layers['c_d_log1p']", "1 NaN/inf"),
    "mask not bool": (_set_layer("mask", lambda a: a.layers["mask"].astype(np.int8)),
                      "layers['mask']", "dtype bool"),
    "mask != (tpm != 0)": (_mask_inconsistent, "layers['mask']", "mask == (tpm != 0)"),
    "patch shape mismatch": (_patch_shape, "obsm['patches_scale_1.0']", "243 columns"),
    "float patches": (_float_patches, "obsm['patches_scale_1.0']", "float32"),
    "no spatial": (_no_spatial, "obsm['spatial']", "none"),
    "no gene_length": (_no_gene_length, "var['gene_length']", "none"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_broken_file_gets_a_clear_problem(good: ad.AnnData, case: str) -> None:
    breaker, key, words = BROKEN[case]
    broken = good.copy()
    if case == "missing layer":
        del broken.layers["tpm"]
    else:
        breaker(broken)
    problems = validate_dataset(broken, expected_genes=32)
    assert problems, case
    assert any(p.key == key for p in problems), [str(p) for p in problems]
    text = "\n".join(str(p) for p in problems)
    assert words in text
    assert "expected" in text and "found" in text


def test_every_problem_is_reported_at_once(good: ad.AnnData) -> None:
    broken = good.copy()
    _no_spatial(broken)
    _no_gene_length(broken)
    del broken.layers["c_log1p"]
    with pytest.raises(SchemaError) as err:
        check_dataset(broken, "broken.h5ad", expected_genes=128)
    keys = {p.key for p in err.value.problems}
    assert {"obsm['spatial']", "var['gene_length']", "layers['c_log1p']", "var_names"} <= keys
    assert str(err.value).startswith("broken.h5ad does not follow the SpaRED dataset schema")
    assert "expected 128 genes (registry), found 32 genes" in str(err.value)


def _spared_style(good: ad.AnnData) -> ad.AnnData:
    """A file shaped like SpaRED's own output: extra keys, sparse counts, no patch_shape."""
    spared = good.copy()
    spared.obs["n_genes_by_counts"] = (spared.layers["counts"] > 0).sum(axis=1)
    spared.var["d_log1p_moran"] = np.linspace(0.1, 0.9, spared.n_vars)
    spared.layers["counts"] = sp.csr_matrix(spared.layers["counts"])
    spared.layers["c_d_deltas"] = spared.layers["c_d_log1p"] - spared.layers["c_d_log1p"].mean(0)
    del spared.uns["patch_shape"]
    del spared.uns["spared_bench"]
    return spared


def test_spared_processed_file_validates_and_imports_unchanged(
    good: ad.AnnData, tmp_path: Path
) -> None:
    source = write_h5ad(_spared_style(good), tmp_path / "from_spared.h5ad")
    assert validate_dataset(read_h5ad(source), expected_genes=32) == []
    store = tmp_path / "store"
    target = import_processed(source, "MHCP1", store)
    assert target == store / "mirzazadeh_human_colon_p1.h5ad"
    assert sha256_file(target) == sha256_file(source)


def test_import_refuses_a_broken_file_and_writes_nothing(good: ad.AnnData, tmp_path: Path) -> None:
    broken = good.copy()
    del broken.layers["mask"]
    source = write_h5ad(broken, tmp_path / "broken.h5ad")
    store = tmp_path / "store"
    with pytest.raises(SchemaError, match=r"layers\['mask'\]: expected a boolean layer"):
        import_processed(source, "MHCP1", store)
    assert not store.exists() or not any(store.iterdir())


def test_unreadable_files_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="found nothing at this path"):
        read_h5ad(tmp_path / "missing.h5ad")
    junk = tmp_path / "junk.h5ad"
    junk.write_text("not hdf5")
    with pytest.raises(InputFileError, match=r"expected an AnnData \.h5ad"):
        read_h5ad(junk)


def test_cli_validate_and_import_report_problems(
    good: ad.AnnData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(tmp_path / "home"))
    broken = good.copy()
    _float_patches(broken)
    source = write_h5ad(broken, tmp_path / "mirzazadeh_human_colon_p1.h5ad")
    result = CliRunner().invoke(cli, ["data", "validate", str(source)])
    assert result.exit_code == 1
    assert "obsm['patches_scale_1.0']: expected dtype uint8, found float32" in result.output
    assert main(["data", "validate", str(source)]) == 1
    capsys.readouterr()
    assert main(["data", "import", str(source), "--dataset", "MHCP1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not (tmp_path / "home" / "processed" / "mirzazadeh_human_colon_p1.h5ad").exists()
    assert main(["data", "import", str(source), "--dataset", "nope_dataset"]) == 2
    assert "unknown dataset 'nope_dataset'" in capsys.readouterr().err


def test_import_refuses_slides_or_splits_other_than_spared_table(good: ad.AnnData,
                                                                  tmp_path: Path) -> None:
    store = tmp_path / "store"
    moved = good.copy()
    splits = moved.obs["split"].astype(str).to_numpy().copy()
    splits[moved.obs["split"].astype(str).to_numpy() == "val"] = "test"
    moved.obs["split"] = pd.Categorical(splits)
    source = write_h5ad(moved, tmp_path / "moved.h5ad")
    with pytest.raises(SchemaError) as err:
        import_processed(source, "MHCP1", store)
    assert ("obs['split'] of slide V11M22-349_A1: expected 'val' (SpaRED's split table of "
            "mirzazadeh_human_colon_p1), found 'test'") in str(err.value)
    assert not store.exists() or not any(store.iterdir())
    renamed = good.copy()
    renamed.obs["slide_id"] = pd.Categorical(
        renamed.obs["slide_id"].astype(str).str.replace("V11M22-349_A1", "MY_SLIDE"))
    other = write_h5ad(renamed, tmp_path / "renamed.h5ad")
    with pytest.raises(SchemaError, match=r"found other slides: MY_SLIDE") as err:
        import_processed(other, "MHCP1", store)
    assert "missing: V11M22-349_A1" in str(err.value)
    # The explicit override takes data that are not SpaRED's.
    target = import_processed(other, "MHCP1", store, other_splits=True)
    assert sha256_file(target) == sha256_file(other)


def test_cli_import_has_an_override_for_other_splits(
    good: ad.AnnData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(tmp_path / "home"))
    renamed = good.copy()
    renamed.obs["slide_id"] = pd.Categorical(
        renamed.obs["slide_id"].astype(str).str.replace("V11M22-349_B1", "MINE"))
    source = write_h5ad(renamed, tmp_path / "mine.h5ad")
    assert main(["data", "import", str(source), "--dataset", "MHCP1"]) == 2
    assert "found other slides: MINE" in capsys.readouterr().err
    assert main(["data", "import", str(source), "--dataset", "MHCP1",
                 "--allow-other-splits"]) == 0
    assert "imported" in capsys.readouterr().out
