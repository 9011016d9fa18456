"""Pipeline configuration files and raw AnnData inputs: defaults, validation, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from evaluator.core.errors import DatasetNotFound
from evaluator.datasets.pipeline import (
    PipelineConfigError,
    RawInputError,
    default_config,
    input_fingerprint,
    load_config,
    raw_from_anndata,
    read_raw,
)
from evaluator.datasets.registry import get_dataset
from tests.datasets.pipeline.conftest import write_h5


def test_defaults_come_from_the_registry() -> None:
    for name in ("vicari_mouse_brain", "mirzazadeh_human_colon_p1"):
        info = get_dataset(name)
        config = default_config(info.abbreviation)
        assert config.dataset == info.name
        assert config.top_moran_genes == info.genes
        assert config.combat_key == info.combat_key
        assert (config.cell_min_counts, config.cell_max_counts) == (10, 1_000_000)
        assert (config.gene_min_counts, config.gene_max_counts) == (10, 1_000_000)
        assert config.real_data_percentage == 0.7


def test_json_and_toml_files(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"cell_min_counts": 25, "combat_key": None}))
    config = load_config(tmp_path / "a.json", "VLO")
    assert config.cell_min_counts == 25 and config.combat_key is None
    assert config.top_moran_genes == 128
    (tmp_path / "b.toml").write_text('dataset = "villacampa_lung_organoid"\nn_hops = 2\n')
    assert load_config(tmp_path / "b.toml", "villacampa_lung_organoid").n_hops == 2
    assert load_config(None, "VLO") == default_config("VLO")


@pytest.mark.parametrize(("content", "message"), [
    ({"cell_min_count": 3}, "cell_min_count: expected a valid value"),
    ({"cell_min_counts": -1}, "cell_min_counts: expected a valid value"),
    ({"gene_min_counts": 10, "gene_max_counts": 5}, "gene_min_counts: expected less than"),
    ({"combat_key": "batch"}, "combat_key: expected a valid value"),
    ({"top_moran_genes": 64}, "top_moran_genes: expected 128 .*found 64"),
    ({"dataset": "mirzazadeh_human_colon_p1"}, "dataset: expected villacampa_lung_organoid"),
    ([1, 2], "expected an object of parameters, found list"),
])
def test_bad_configs_name_the_file_and_field(tmp_path: Path, content: Any, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(content))
    with pytest.raises(PipelineConfigError, match=message) as info:
        load_config(path, "villacampa_lung_organoid")
    assert str(path) in str(info.value)


def test_unreadable_or_missing_config(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text("{nope")
    with pytest.raises(PipelineConfigError, match="expected valid JSON"):
        load_config(tmp_path / "c.json", "VLO")
    with pytest.raises(PipelineConfigError, match="expected a configuration file"):
        load_config(tmp_path / "absent.json", "VLO")
    (tmp_path / "c.yaml").write_text("a: 1")
    with pytest.raises(PipelineConfigError, match=r"expected a .json or .toml file"):
        load_config(tmp_path / "c.yaml", "VLO")
    with pytest.raises(DatasetNotFound):
        load_config(None, "no_such_dataset")


def test_fingerprint_follows_results_not_memory() -> None:
    base = default_config("VLO")
    assert base.fingerprint() == default_config("villacampa_lung_organoid").fingerprint()
    assert base.fingerprint() != base.model_copy(update={"n_hops": 3}).fingerprint()
    assert base.fingerprint() == base.model_copy(update={"chunk_mb": 8.0}).fingerprint()
    assert base.fingerprint("spackle-a") != base.fingerprint("spackle-b")


def test_raw_anndata_problems_are_listed_together(raw_vlo: Any) -> None:
    broken = raw_vlo.copy()
    del broken.obs["patient"]
    del broken.obs["split"]
    del broken.var["gene_length"]
    del broken.obsm["patches_scale_1.0"]
    with pytest.raises(RawInputError) as info:
        raw_from_anndata(broken, "broken.h5ad")
    text = str(info.value)
    for key in ("obs['patient']", "obs['split']", "var['gene_length']",
                "obsm['patches_scale_1.0']"):
        assert key in text
    assert text.startswith("broken.h5ad: not a usable raw dataset")


def test_raw_counts_must_be_counts(raw_vlo: Any) -> None:
    processed = raw_vlo.copy()
    processed.X = sp.csr_matrix(np.log2(processed.X.toarray() + 1.5))
    with pytest.raises(RawInputError, match=r"expected raw counts .*non-negative integers"):
        raw_from_anndata(processed, "log.h5ad")
    negative = raw_vlo.copy()
    negative.X = -negative.X
    with pytest.raises(RawInputError, match="expected non-negative counts"):
        raw_from_anndata(negative, "neg.h5ad")
    one_split = raw_vlo.copy()
    one_split.obs["split"] = "train"
    with pytest.raises(RawInputError, match="expected 'train' spots and 'val' or 'test'"):
        raw_from_anndata(one_split, "train_only.h5ad")


def test_counts_layer_wins_and_dense_is_accepted(raw_vlo: Any) -> None:
    data = raw_vlo.copy()
    data.layers["counts"] = data.X.toarray()
    data.X = np.zeros(data.shape, dtype=np.float32)
    raw = raw_from_anndata(data, "layer.h5ad")
    assert sp.issparse(raw.counts)
    assert raw.counts.nnz == raw_vlo.X.nnz
    assert raw.patch_shape == (4, 4, 3)


def test_read_raw_paths(raw_vlo: Any, tmp_path: Path) -> None:
    path = write_h5(tmp_path / "villacampa_lung_organoid.h5ad", raw_vlo)
    raw = read_raw(path)
    assert raw.n_spots == raw_vlo.n_obs and raw.n_genes == raw_vlo.n_vars
    assert input_fingerprint(path) == input_fingerprint(path)
    with pytest.raises(RawInputError, match="found nothing at this path"):
        read_raw(tmp_path / "absent.h5ad")
    with pytest.raises(RawInputError, match=r"expected a raw .h5ad file or a folder with "
                                             r"sources.json"):
        read_raw(tmp_path)
    (tmp_path / "counts.csv").write_text("a,b\n")
    with pytest.raises(RawInputError, match=r"found suffix '.csv'"):
        read_raw(tmp_path / "counts.csv")
