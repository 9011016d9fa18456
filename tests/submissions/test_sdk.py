"""The submission SDK: reads staged inputs like anndata does, writes valid predictions, and
needs nothing of the evaluator (numpy and h5py only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from evaluator.jobs import TaskSettings, stage_evaluation_inputs, validate_output

REPO = Path(__file__).resolve().parents[2]
SDK_DIR = REPO / "submissions" / "sdk"
sys.path.insert(0, str(SDK_DIR))
import spared_sdk as sdk  # noqa: E402

# Run in a fresh interpreter whose path holds only the SDK's folder beside the standard
# library and site-packages: importing the evaluator (or pydantic) is made to fail outright.
SCRIPT = """
import sys
for name in ("evaluator", "pydantic", "anndata", "pandas"):
    sys.modules[name] = None
import numpy as np
import spared_sdk as sdk
task = sdk.read_task()
train, test = sdk.load_train(), sdk.load_test()
assert train.X.shape == (train.n_spots, task.n_genes) and test.X is None
w = sdk.training_weights(train, task.track)
mean = (train.X * w).sum(0) / np.maximum(w.sum(0), 1)
sdk.write_predictions(np.tile(mean, (test.n_spots, 1)).astype(np.float64), task)
sdk.write_model_card("sdk-test", {"n_train": train.n_spots})
np.savez(sdk.output_dir() / "seen.npz", X=train.X, mask=train.mask, patches=test.patches,
         slides=test.slide_ids, genes=np.array(train.genes), rows=test.obs["array_row"],
         ids=test.spot_ids)
print("imported:", sorted(m for m, mod in sys.modules.items()
                         if mod is not None and m.split(".")[0] in ("evaluator", "pydantic")))
"""


@pytest.fixture(scope="module")
def staged(tiny_release, tmp_path_factory: pytest.TempPathFactory):
    return stage_evaluation_inputs(tiny_release, "mirzazadeh_human_prostate_cancer", "raw",
                                   TaskSettings(time_limit_s=30), tmp_path_factory.mktemp("st"))


def test_sdk_runs_without_the_evaluator(staged, tiny_release, tmp_path: Path) -> None:
    out = tmp_path / "output"
    out.mkdir()
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(SDK_DIR),
           "SPARED_INPUT_DIR": str(staged.input_dir), "SPARED_OUTPUT_DIR": str(out)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "imported: []" in result.stdout
    predictions = validate_output(out, staged.task)  # the evaluator's own check accepts it
    assert predictions.dtype == np.float32 and predictions.shape == staged.task.predictions_shape
    assert json.loads((out / "model.json").read_text())["name"] == "sdk-test"

    seen = np.load(out / "seen.npz")
    train = ad.read_h5ad(tiny_release.train_path(staged.task.dataset, "raw"))
    test = ad.read_h5ad(tiny_release.test_inputs_path(staged.task.dataset))
    np.testing.assert_array_equal(seen["X"], np.asarray(train.X))
    np.testing.assert_array_equal(seen["mask"], np.asarray(train.layers["mask"]))
    np.testing.assert_array_equal(
        seen["patches"], np.load(tiny_release.test_patches_path(staged.task.dataset)))
    assert seen["slides"].tolist() == test.obs["slide_id"].astype(str).tolist()
    assert seen["rows"].tolist() == test.obs["array_row"].tolist()
    assert seen["ids"].tolist() == test.obs_names.tolist()
    assert seen["genes"].tolist() == staged.task.genes


def test_write_predictions_refuses_what_the_evaluator_would(tmp_path: Path, staged) -> None:
    task = sdk.read_task(staged.input_dir)
    n, g = task.n_test_spots, task.n_genes
    with pytest.raises(sdk.ContractViolation, match=rf"expected shape .* = \({n}, {g}\), "
                                                    rf"found \({g}, {n}\)"):
        sdk.write_predictions(np.zeros((g, n)), task, tmp_path)
    bad = np.zeros((n, g))
    bad[2, 1] = np.nan
    with pytest.raises(sdk.ContractViolation, match=r"1 NaN/inf, first at \(spot, gene\) \(2, 1\)"):
        sdk.write_predictions(bad, task, tmp_path)
    assert not (tmp_path / "predictions.npy").exists()
    path = sdk.write_predictions(np.ones((n, g), dtype=np.float64), task, tmp_path)
    assert np.load(path).dtype == np.float32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.npy"]  # no temp files


def test_task_json_problems(tmp_path: Path) -> None:
    (tmp_path / "task.json").write_text(json.dumps({"contract_version": 2}))
    with pytest.raises(sdk.ContractViolation, match=r"contract_version': expected 1"):
        sdk.read_task(tmp_path)
    (tmp_path / "task.json").write_text(json.dumps({"contract_version": 1, "dataset": "x"}))
    with pytest.raises(sdk.ContractViolation, match=r"expected keys \['track', 'genes'"):
        sdk.read_task(tmp_path)


def test_sparse_matrices_read_as_dense(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((12, 5)) > 0.6) * rng.random((12, 5)).astype(np.float32)
    for fmt in (sp.csr_matrix, sp.csc_matrix):
        adata = ad.AnnData(X=fmt(dense.astype(np.float32)),
                           obsm={"patches_scale_1.0": np.zeros((12, 4 * 4 * 3), np.uint8),
                                 "spatial": np.zeros((12, 2))})
        adata.layers["mask"] = fmt(dense > 0)
        adata.obs["slide_id"] = ["A"] * 6 + ["B"] * 6
        adata.write_h5ad(tmp_path / "train.h5ad")
        spots = sdk.load_train(tmp_path)
        np.testing.assert_array_equal(spots.X, dense.astype(np.float32))
        np.testing.assert_array_equal(spots.mask, dense > 0)
        assert spots.patches.shape == (12, 4, 4, 3)
        assert spots.slide_ids.tolist() == ["A"] * 6 + ["B"] * 6


def test_patches_are_memory_mapped_and_batched(staged) -> None:
    train = sdk.load_train(staged.input_dir)
    assert isinstance(train.patches, np.memmap) and not train.patches.flags.writeable
    assert train.patches.shape == (train.n_spots, 8, 8, 3)
    batches = list(sdk.iter_patches(train, batch_size=7))
    assert [len(rows) for rows, _ in batches[:-1]] == [7] * (len(batches) - 1)
    np.testing.assert_array_equal(np.concatenate([b for _, b in batches]), train.patches)
    order = np.random.default_rng(0).permutation(train.n_spots)
    rows, batch = next(sdk.iter_patches(train, batch_size=5, rows=order))
    assert rows.tolist() == order[:5].tolist()
    np.testing.assert_array_equal(batch, train.patches[order[:5]])
    with pytest.raises(sdk.ContractViolation, match="batch_size: expected at least 1"):
        next(sdk.iter_patches(train, batch_size=0))
    # read_patches: plain reads of any rows, in the order asked, repeats included
    rows = [5, 4, 5, 0, 1, 2]
    np.testing.assert_array_equal(sdk.read_patches(train, rows), train.patches[rows])
    with pytest.raises(sdk.ContractViolation, match=r"rows: expected indices in \[0, "):
        sdk.read_patches(train, [train.n_spots])


def test_the_contracts_torch_example_runs_as_written(staged, tmp_path: Path) -> None:
    """CONTRACT.md's DataLoader example, copied out of the document, predicts valid output."""
    text = (REPO / "submissions" / "CONTRACT.md").read_text()
    code = text.split("A torch `Dataset` and `DataLoader`")[1].split("```python\n")[1]
    (tmp_path / "predict.py").write_text(code.split("```")[0])
    out = tmp_path / "output"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(SDK_DIR), "SPARED_INPUT_DIR": str(staged.input_dir),
           "SPARED_OUTPUT_DIR": str(out), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(tmp_path / "predict.py")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = validate_output(out, staged.task)
    assert predictions.shape == staged.task.predictions_shape


@pytest.mark.parametrize(("asked", "torch_state", "expected", "warning"), [
    ("cpu", "cpu-build", "cpu", None),
    ("cuda", "cpu-build", "cpu", "CPU-only build"),
    ("cuda", "cuda-build-no-gpu", "cpu", "no GPU is visible"),
    ("cuda", "gpu", "cuda", None),
    ("cuda", "missing", "cpu", "torch is not installed"),
])
def test_device_says_where_to_compute_and_warns_when_cuda_is_absent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, asked: str,
    torch_state: str, expected: str, warning: str | None,
) -> None:
    import types

    # The torch states a container can be in, as torch reports them (a GPU is not lent here).
    fake = types.ModuleType("torch")
    fake.version = types.SimpleNamespace(cuda=None if torch_state == "cpu-build" else "12.6")
    fake.cuda = types.SimpleNamespace(is_available=lambda: torch_state == "gpu")
    monkeypatch.setitem(sys.modules, "torch", None if torch_state == "missing" else fake)
    task = sdk.Task(contract_version=1, dataset="d", track="raw", genes=["g"], n_test_spots=1,
                    patch_shape=(8, 8, 3), time_limit_s=60.0, device=asked, seed=0)
    assert sdk.device(task) == expected
    err = capsys.readouterr().err
    if warning is None:
        assert err == ""
    else:
        assert "task.device is 'cuda'" in err and warning in err


def test_device_on_this_machines_torch_matches_torch() -> None:
    import torch

    task = sdk.Task(contract_version=1, dataset="d", track="raw", genes=["g"], n_test_spots=1,
                    patch_shape=(8, 8, 3), time_limit_s=60.0, device="cuda", seed=0)
    assert sdk.device(task, warn=False) == ("cuda" if torch.cuda.is_available() else "cpu")


def test_write_model_card_writes_strict_json_the_evaluator_reads(tmp_path: Path) -> None:
    from evaluator.contract import read_model_card

    path = sdk.write_model_card("nan-card", {"lr": float("nan"), "cap": float("inf"),
                                             "floor": -np.inf, "w": np.float32(0.5),
                                             "grid": np.arange(3)}, folder=tmp_path)
    text = path.read_text()
    assert "NaN" not in text.replace('"NaN"', "")  # only as a string, never a bare token
    json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in model.json"))
    card = read_model_card(path)
    assert card.parameters == {"lr": "NaN", "cap": "Infinity", "floor": "-Infinity", "w": 0.5,
                               "grid": [0, 1, 2]}
