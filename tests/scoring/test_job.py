"""Prediction validation, truth loading (h5ad, release, npz) and job scoring with provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluator.core.errors import BenchError
from evaluator.scoring import (
    SCORER_VERSION,
    PredictionError,
    TruthError,
    compute_metrics,
    load_predictions,
    load_truth,
    score_predictions,
    truth_from_arrays,
)
from tests.scoring.reference import reference_metrics

N_SPOTS, N_GENES = 12, 5


def _arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.random((N_SPOTS, N_GENES)).astype(np.float32) * 4
    mask = rng.random((N_SPOTS, N_GENES)) < 0.7
    completed = np.where(mask, truth, truth + 0.5).astype(np.float32)
    pred = (truth + rng.normal(0, 0.3, truth.shape)).astype(np.float32)
    return truth, mask, completed, pred


def _write_h5ad(path: Path, splits: list[str], seed: int = 0) -> tuple[np.ndarray, ...]:
    import anndata as ad

    truth, mask, completed, _ = _arrays(seed)
    obs = pd.DataFrame(
        {"split": pd.Categorical(splits)}, index=[f"spot{i}" for i in range(N_SPOTS)]
    )
    var = pd.DataFrame(index=[f"G{j}" for j in range(N_GENES)])
    adata = ad.AnnData(
        X=truth.copy(), obs=obs, var=var,
        layers={"c_d_log1p": truth, "mask": mask, "c_t_log1p": completed},
    )
    adata.write_h5ad(path)
    return truth, mask, completed


def test_load_predictions_accepts_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "predictions.npy"
    pred = np.arange(10, dtype=np.float32).reshape(5, 2)
    np.save(path, np.asfortranarray(pred))
    got = load_predictions(path, expected_shape=(5, 2))
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, pred)


@pytest.mark.parametrize(("make", "needles"), [
    ("missing", ["file", "no such file"]),
    ("not_npy", ["format", ".npy"]),
    ("float64", ["dtype", "expected float32", "found float64", "astype(np.float32)"]),
    ("int", ["dtype", "found int64"]),
    ("3d", ["shape", "3-D"]),
    ("shape", ["shape", "(5, 2)", "found (4, 2)"]),
    ("transposed", ["transposed"]),
    ("nan", ["values", "1 NaN and 1 inf", "first at (spot, gene) (1, 0)"]),
    ("too_big", ["size", "at most 16 bytes"]),
    ("object", ["dtype", "found object"]),
])
def test_load_predictions_rejects_bad_files_with_clear_messages(
    tmp_path: Path, make: str, needles: list[str]
) -> None:
    path = tmp_path / "predictions.npy"
    good = np.zeros((5, 2), dtype=np.float32)
    max_bytes = None
    if make == "not_npy":
        path.write_text("1,2\n3,4\n")
    elif make == "float64":
        np.save(path, good.astype(np.float64))
    elif make == "int":
        np.save(path, good.astype(np.int64))
    elif make == "3d":
        np.save(path, np.zeros((5, 2, 1), dtype=np.float32))
    elif make == "shape":
        np.save(path, np.zeros((4, 2), dtype=np.float32))
    elif make == "transposed":
        np.save(path, np.zeros((2, 5), dtype=np.float32))
    elif make == "nan":
        bad = good.copy()
        bad[1, 0] = np.nan
        bad[3, 1] = np.inf
        np.save(path, bad)
    elif make == "too_big":
        np.save(path, good)
        max_bytes = 16
    elif make == "object":
        np.save(path, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(PredictionError) as info:
        load_predictions(path, expected_shape=(5, 2), max_bytes=max_bytes)
    message = str(info.value)
    assert isinstance(info.value, BenchError)
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_processed_h5ad_scores_only_the_hidden_split(tmp_path: Path) -> None:
    splits = ["train"] * 4 + ["val"] * 3 + ["test"] * 5
    truth, mask, _ = _write_h5ad(tmp_path / "demo.h5ad", splits)
    loaded = load_truth(tmp_path / "demo.h5ad")
    hidden = np.array(splits) == "test"
    np.testing.assert_array_equal(loaded.truth, truth[hidden])
    np.testing.assert_array_equal(loaded.mask, mask[hidden])
    assert loaded.genes == [f"G{j}" for j in range(N_GENES)]
    assert loaded.dataset == "demo"
    assert loaded.shape == (5, N_GENES)


def test_processed_h5ad_without_test_spots_uses_val(tmp_path: Path) -> None:
    splits = ["train"] * 8 + ["val"] * 4
    truth, _, _ = _write_h5ad(tmp_path / "noval.h5ad", splits)
    loaded = load_truth(tmp_path / "noval.h5ad")
    np.testing.assert_array_equal(loaded.truth, truth[8:])


def test_release_truth_scores_every_spot_with_release_provenance(tmp_path: Path) -> None:
    folder = tmp_path / "rel" / "hidden" / "tiny_set"
    folder.mkdir(parents=True)
    (tmp_path / "rel" / "manifest.json").write_text(json.dumps({"release_id": "abc123"}))
    import anndata as ad

    truth, mask, completed, pred = _arrays(1)
    ad.AnnData(
        X=truth.copy(),
        obs=pd.DataFrame(index=[f"s{i}" for i in range(N_SPOTS)]),
        var=pd.DataFrame(index=[f"G{j}" for j in range(N_GENES)]),
        layers={"c_d_log1p": truth, "mask": mask, "c_t_log1p": completed},
    ).write_h5ad(folder / "truth.h5ad")
    pred_path = tmp_path / "predictions.npy"
    np.save(pred_path, pred)
    result = score_predictions(load_truth(folder / "truth.h5ad", track="spackle"), pred_path)
    assert result.provenance.release_id == "abc123"
    assert result.provenance.dataset == "tiny_set"
    assert result.provenance.track == "spackle"
    assert result.provenance.scorer_version == SCORER_VERSION
    assert result.provenance.scored_at_utc.utcoffset() is not None
    assert (result.n_spots, result.n_genes, result.n_measured) == (
        N_SPOTS, N_GENES, int(mask.sum())
    )
    want = reference_metrics(truth, pred, mask)
    assert result.metrics.mse == pytest.approx(want["mse"], rel=1e-9)
    assert result.completed_metrics is not None
    everywhere = np.ones_like(mask)
    assert result.completed_metrics.mse == pytest.approx(
        reference_metrics(completed, pred, everywhere)["mse"], rel=1e-9
    )
    assert result.completed_metrics.n_measured == N_SPOTS * N_GENES
    row = result.as_row()
    assert row["completed_pcc_gene"] == result.completed_metrics.pcc_gene
    assert row["dataset"] == "tiny_set"


def test_npz_truth_and_raw_track_have_no_completed_metrics(tmp_path: Path) -> None:
    truth, mask, _, pred = _arrays(2)
    np.savez(tmp_path / "t.npz", truth=truth, mask=mask)
    result = score_predictions(load_truth(tmp_path / "t.npz"), pred, release_id="r1")
    assert result.completed_metrics is None
    assert result.provenance.release_id == "r1"
    assert result.metrics == compute_metrics(truth, pred, mask)


@pytest.mark.parametrize(("make", "needle"), [
    ("missing", "no such file"),
    ("suffix", "a .h5ad or .npz file"),
    ("no_mask", "arrays 'truth' and 'mask'"),
    ("spackle_without_completed", "array 'completed'"),
    ("mask_shape", "mask of shape"),
    ("float_mask", "dtype bool"),
])
def test_bad_truth_is_rejected(tmp_path: Path, make: str, needle: str) -> None:
    truth, mask, _, _ = _arrays(3)
    path = tmp_path / "t.npz"
    track = "raw"
    if make == "missing":
        path = tmp_path / "absent.npz"
    elif make == "suffix":
        path = tmp_path / "t.csv"
        path.write_text("x")
    elif make == "no_mask":
        np.savez(path, truth=truth)
    elif make == "spackle_without_completed":
        np.savez(path, truth=truth, mask=mask)
        track = "spackle"
    elif make == "mask_shape":
        np.savez(path, truth=truth, mask=mask[:-1])
    elif make == "float_mask":
        np.savez(path, truth=truth, mask=mask.astype(np.float32))
    with pytest.raises(TruthError, match=needle):
        load_truth(path, track=track)  # type: ignore[arg-type]


def test_h5ad_spackle_requires_the_completed_layer(tmp_path: Path) -> None:
    import anndata as ad

    truth, mask, _, _ = _arrays(4)
    ad.AnnData(
        X=truth.copy(), obs=pd.DataFrame(index=[f"s{i}" for i in range(N_SPOTS)]),
        var=pd.DataFrame(index=[f"G{j}" for j in range(N_GENES)]),
        layers={"c_d_log1p": truth, "mask": mask},
    ).write_h5ad(tmp_path / "x.h5ad")
    with pytest.raises(TruthError, match="c_t_log1p"):
        load_truth(tmp_path / "x.h5ad", track="spackle")


def test_in_memory_predictions_follow_the_same_contract() -> None:
    truth, mask, _, pred = _arrays(5)
    ts = truth_from_arrays(truth, mask, dataset="mem")
    with pytest.raises(PredictionError, match="found float64"):
        score_predictions(ts, pred.astype(np.float64))
    bad = pred.copy()
    bad[0, 0] = np.inf
    with pytest.raises(PredictionError, match="non-finite"):
        score_predictions(ts, bad)
    assert score_predictions(ts, pred).provenance.release_id == "local"
