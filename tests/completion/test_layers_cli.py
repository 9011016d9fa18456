"""AnnData inputs, the completion layers, the release hook and the ``complete`` CLI."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pytest

from evaluator.cli.app import main
from evaluator.completion import CompletionInputError, SpackleConfig, adaptive_median_filter
from evaluator.completion import spackle as spackle_module
from evaluator.completion.layers import (
    add_completion_layers,
    complete_anndata,
    spot_data_from_anndata,
)
from tests.conftest import build_test_release

FAST = SpackleConfig(max_steps=8, val_every_steps=4, device="cpu")


def _without(adata: ad.AnnData, *, layers=(), obs=()) -> ad.AnnData:
    out = adata.copy()
    for key in layers:
        del out.layers[key]
    return out[:, :].copy() if not obs else ad.AnnData(
        X=out.X, obs=out.obs.drop(columns=list(obs)), var=out.var, layers=dict(out.layers))


def test_bad_inputs_give_clear_errors(tiny_adata: ad.AnnData) -> None:
    with pytest.raises(CompletionInputError, match=r"expected layer 'nope', found layers \["):
        spot_data_from_anndata(tiny_adata, "nope", source="x.h5ad")
    no_grid = _without(tiny_adata, obs=("array_row",))
    with pytest.raises(CompletionInputError, match=r"x.h5ad: obs\['array_row'\]: expected Visium"):
        spot_data_from_anndata(no_grid, "log1p", source="x.h5ad")
    no_mask = _without(tiny_adata, layers=("mask", "tpm"))
    with pytest.raises(CompletionInputError, match=r"expected layers\['mask'\]"):
        spot_data_from_anndata(no_mask, "log1p", source="x.h5ad")
    # Without layers['mask'] the mask comes from tpm != 0.
    from_tpm = spot_data_from_anndata(_without(tiny_adata, layers=("mask",)), "log1p")
    np.testing.assert_array_equal(from_tpm.mask, tiny_adata.layers["tpm"] != 0)


def test_median_layer_equals_the_filter(tiny_adata: ad.AnnData) -> None:
    adata = tiny_adata.copy()
    out = complete_anndata(adata, "median", out_layer="med")
    assert out == "med"
    expected = adaptive_median_filter(
        adata.layers["log1p"], adata.layers["mask"], adata.obs["array_row"].to_numpy(),
        adata.obs["array_col"].to_numpy(), adata.obs["slide_id"].astype(str).to_numpy())
    np.testing.assert_array_equal(adata.layers["med"], expected)


def test_add_completion_layers_adds_both_and_caches(tiny_adata: ad.AnnData, tmp_path,
                                                    monkeypatch) -> None:
    adata = _without(tiny_adata, layers=("d_log1p",))
    assert "c_t_log1p" not in adata.layers
    report = add_completion_layers(adata, cache_dir=tmp_path, data_hash="h1", config=FAST,
                                   progress=False)
    assert report.added == ["d_log1p", "c_t_log1p"] and report.cache_hit is False
    mask = adata.layers["mask"]
    np.testing.assert_array_equal(adata.layers["c_t_log1p"][mask],
                                  adata.layers["c_d_log1p"][mask])
    assert np.isfinite(adata.layers["c_t_log1p"]).all()

    monkeypatch.setattr(spackle_module, "train_spackle",
                        lambda *a, **k: pytest.fail("retrained despite the cache"))
    again = _without(tiny_adata, layers=("d_log1p",))
    report2 = add_completion_layers(again, cache_dir=tmp_path, data_hash="h1", config=FAST,
                                    progress=False)
    assert report2.cache_hit is True
    np.testing.assert_array_equal(again.layers["c_t_log1p"], adata.layers["c_t_log1p"])
    # Layers already there are left alone.
    assert add_completion_layers(again, cache_dir=tmp_path, data_hash="h1",
                                 progress=False).added == []


def test_release_without_spackle_layer_carries_both_tracks(tiny_adata: ad.AnnData, tmp_path,
                                                           monkeypatch) -> None:
    from evaluator.datasets.store import write_h5ad

    monkeypatch.setenv("SPARED_BENCH_PROGRESS", "0")
    source = tmp_path / "processed" / "villacampa_lung_organoid.h5ad"
    assert "c_t_log1p" not in tiny_adata.layers
    write_h5ad(tiny_adata, source)
    cache = tmp_path / "cache"
    release, created = build_test_release([source], tmp_path / "releases_a", cache_dir=cache)
    assert created
    record = release.manifest.datasets["villacampa_lung_organoid"]
    assert record.tracks == ["raw", "spackle"]
    root = release.root
    spackle_train = ad.read_h5ad(root / "public" / "villacampa_lung_organoid" / "spackle"
                                 / "train.h5ad")
    truth = ad.read_h5ad(root / "hidden" / "villacampa_lung_organoid" / "truth.h5ad")
    assert "c_t_log1p" in truth.layers
    m = spackle_train.layers["mask"]
    assert np.isfinite(spackle_train.X).all() and (spackle_train.X[~m] != 0).any()
    assert len(list((cache / "spackle").glob("*.pt"))) == 1

    monkeypatch.setattr(spackle_module, "train_spackle",
                        lambda *a, **k: pytest.fail("retrained an unchanged dataset"))
    again, created = build_test_release([source], tmp_path / "releases_b", cache_dir=cache)
    assert created and again.manifest.release_id == release.manifest.release_id
    assert len(list((cache / "spackle").glob("*.pt"))) == 1


def test_cli_complete_median_and_spackle(tiny_adata: ad.AnnData, tmp_path, capsys) -> None:
    src = tmp_path / "in.h5ad"
    tiny_adata.write_h5ad(src)
    assert main(["complete", "--method", "median", str(src), str(tmp_path / "med.h5ad")]) == 0
    med = ad.read_h5ad(tmp_path / "med.h5ad")
    np.testing.assert_array_equal(
        med.layers["d_log1p"],
        adaptive_median_filter(tiny_adata.layers["log1p"], tiny_adata.layers["mask"],
                               tiny_adata.obs["array_row"].to_numpy(),
                               tiny_adata.obs["array_col"].to_numpy(),
                               tiny_adata.obs["slide_id"].astype(str).to_numpy()))
    ckpt = tmp_path / "m.pt"
    assert main(["complete", "--method", "spackle", "--max-steps", "6", "--device", "cpu",
                 "--save-checkpoint", str(ckpt), str(src), str(tmp_path / "spk.h5ad")]) == 0
    spk = ad.read_h5ad(tmp_path / "spk.h5ad")
    mask = spk.layers["mask"]
    np.testing.assert_array_equal(spk.layers["c_t_log1p"][mask], spk.layers["c_d_log1p"][mask])
    assert ckpt.is_file()
    out = capsys.readouterr().out
    assert "completed by SpaCKLE" in out and "completed by adaptive median filter" in out

    # evaluate with the saved model, a sweep, JSON and a plot
    report = tmp_path / "eval.json"
    plot = tmp_path / "sweep.png"
    assert main(["complete", "evaluate", str(src), "--checkpoint", str(ckpt), "--assays", "2",
                 "--json", str(report), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "MSE SpaCKLE" in text and "missing-fraction sweep" in text and "70%" in text
    data = json.loads(report.read_text())
    assert {s["method"] for s in data["summary"]} == {"median", "spackle"}
    assert sorted({s["rho"] for s in data["sweep"]}) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_inputs_exit_2(tiny_adata: ad.AnnData, tmp_path, capsys) -> None:
    src = tmp_path / "in.h5ad"
    tiny_adata.write_h5ad(src)
    assert main(["complete", "--method", "median", "--layer", "nope", str(src),
                 str(tmp_path / "o.h5ad")]) == 2
    assert "error:" in capsys.readouterr().err
    no_grid = tmp_path / "nogrid.h5ad"
    _without(tiny_adata, obs=("array_row", "array_col")).write_h5ad(no_grid)
    assert main(["complete", "evaluate", str(no_grid), "--median-only"]) == 2
    assert "obs['array_row']: expected Visium grid coordinates" in capsys.readouterr().err
    assert main(["complete", "--method", "median", str(tmp_path / "absent.h5ad"),
                 str(tmp_path / "o.h5ad")]) == 2
    assert "found nothing at this path" in capsys.readouterr().err
    assert not (tmp_path / "o.h5ad").exists()
