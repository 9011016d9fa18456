"""Staged inputs: exactly the three files, read-only, shared, and never holding truth bytes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from evaluator.contract import INPUT_ENVIRONMENT, read_task
from evaluator.datasets.patches import open_processed
from evaluator.jobs import (
    StagingError,
    TaskSettings,
    make_writable,
    stage_evaluation_inputs,
    stage_validation_inputs,
    validation_split,
)

SETTINGS = TaskSettings(time_limit_s=30, device="cpu", seed=0)


def _rows_found(data: bytes, rows: np.ndarray) -> int:
    """How many rows' float32 bytes occur verbatim in ``data`` (rows with ≥ 4 non-zeros)."""
    found = 0
    for row in np.ascontiguousarray(rows, dtype=np.float32):
        if np.count_nonzero(row) >= 4 and row.tobytes() in data:
            found += 1
    return found


def _staged_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()))


@pytest.fixture(scope="module")
def staging_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("staging")


@pytest.mark.parametrize("purpose", ["evaluation", "validation"])
def test_staged_folder_holds_the_input_files_read_only(tiny_release, staging_root: Path,
                                                      purpose: str) -> None:
    stage = stage_evaluation_inputs if purpose == "evaluation" else stage_validation_inputs
    staged = stage(tiny_release, "villacampa_lung_organoid", "raw", SETTINGS, staging_root)
    folder = staged.input_dir
    assert sorted(p.name for p in folder.iterdir()) == [
        "task.json", "test.h5ad", "test_patches.npy", "train.h5ad", "train_patches.npy"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o555
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o444, path
    assert staged.truth_path.parent != folder and folder not in staged.truth_path.parents
    task = read_task(folder / "task.json")
    assert task == staged.task
    with open_processed(folder / "test.h5ad") as (test, _), \
            open_processed(folder / "train.h5ad") as (train, _):
        pass
    assert test.n_obs == task.n_test_spots
    assert list(test.var_names) == task.genes == list(train.var_names)
    assert task.patch_shape == (8, 8, 3)
    assert test.X is None and len(test.layers) == 0
    assert set(test.obs_names).isdisjoint(train.obs_names)
    # Contract-1 readers find the patches inside the .h5ad files: HDF5 external storage of
    # the .npy beside them, found with the runners' INPUT_ENVIRONMENT. HDF5 reads it when it
    # starts, so a fresh interpreter reads the files as a submission does.
    script = (
        "import sys, anndata as ad, numpy as np\n"
        "for name in ('train', 'test'):\n"
        "    inside = ad.read_h5ad(f'{sys.argv[1]}/{name}.h5ad').obsm['patches_scale_1.0']\n"
        "    beside = np.load(f'{sys.argv[1]}/{name}_patches.npy')\n"
        "    assert inside.shape == (len(beside), 8 * 8 * 3), inside.shape\n"
        "    assert (inside == beside.reshape(len(beside), -1)).all()\n"
        "    print(name, len(beside))\n")
    done = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True,
                          text=True, env={**os.environ, **INPUT_ENVIRONMENT}, cwd="/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["train", str(train.n_obs), "test", str(test.n_obs)]
    without = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True,
                             text=True, env={k: v for k, v in os.environ.items()
                                             if k not in INPUT_ENVIRONMENT}, cwd="/")
    assert "unable to open external raw data file" in without.stderr


def test_evaluation_inputs_hold_no_truth_bytes(tiny_release, staging_root: Path) -> None:
    for dataset in tiny_release.datasets:
        truth = ad.read_h5ad(tiny_release.truth_path(dataset))
        for track in ("raw", "spackle"):
            staged = stage_evaluation_inputs(tiny_release, dataset, track, SETTINGS, staging_root)
            data = _staged_bytes(staged.input_dir)
            for layer in ("c_d_log1p", "c_t_log1p"):
                assert _rows_found(data, truth.layers[layer]) == 0, (dataset, track, layer)
            # the same search finds the training rows: the method can see rows when present
            train = ad.read_h5ad(tiny_release.train_path(dataset, track))
            assert _rows_found(data, np.asarray(train.X)[:20]) >= 15


def test_validation_inputs_hold_neither_hidden_nor_held_out_truth(tiny_release,
                                                                   staging_root: Path) -> None:
    for dataset in tiny_release.datasets:
        hidden = ad.read_h5ad(tiny_release.truth_path(dataset))
        staged = stage_validation_inputs(tiny_release, dataset, "spackle", SETTINGS,
                                         staging_root)
        data = _staged_bytes(staged.input_dir)
        with np.load(staged.truth_path) as npz:
            held_out = npz["truth"]
        assert held_out.shape == staged.task.predictions_shape
        assert _rows_found(data, held_out) == 0, dataset
        assert _rows_found(data, hidden.layers["c_t_log1p"]) == 0, dataset
        public = ad.read_h5ad(tiny_release.train_path(dataset, "spackle"))
        with open_processed(staged.input_dir / "train.h5ad") as (train, _):
            pass
        assert train.n_obs + staged.task.n_test_spots == public.n_obs
        assert _rows_found(data, np.asarray(train.X)[:20]) >= 15


def test_staging_is_shared_hard_linked_and_keyed_by_task(tiny_release, tmp_path: Path) -> None:
    first = stage_evaluation_inputs(tiny_release, "MHPC", "raw", SETTINGS, tmp_path)
    again = stage_evaluation_inputs(tiny_release, "MHPC", "raw", SETTINGS, tmp_path)
    assert again.input_dir == first.input_dir
    # No pixel is copied: the staged patches are the release's own files.
    for name, source in (("train_patches.npy", tiny_release.train_patches_path("MHPC")),
                         ("test_patches.npy", tiny_release.test_patches_path("MHPC"))):
        assert (first.input_dir / name).stat().st_ino == source.stat().st_ino
    other = stage_evaluation_inputs(tiny_release, "MHPC", "raw",
                                    TaskSettings(time_limit_s=99, device="cuda", seed=7), tmp_path)
    assert other.input_dir != first.input_dir
    task = json.loads((other.input_dir / "task.json").read_text())
    assert (task["time_limit_s"], task["device"], task["seed"]) == (99.0, "cuda", 7)
    assert (other.input_dir / "test.h5ad").stat().st_ino == \
        (first.input_dir / "test.h5ad").stat().st_ino


def test_an_altered_cached_folder_is_refused(tiny_release, tmp_path: Path) -> None:
    staged = stage_evaluation_inputs(tiny_release, "VLO", "raw", SETTINGS, tmp_path)
    make_writable(staged.input_dir)
    (staged.input_dir / "notes.txt").write_text("extra")
    with pytest.raises(StagingError, match=r"expected exactly \['task.json', 'test.h5ad', "
                                           r"'test_patches.npy', 'train.h5ad', "
                                           r"'train_patches.npy'\], found \['notes.txt'"):
        stage_evaluation_inputs(tiny_release, "VLO", "raw", SETTINGS, tmp_path)


def test_validation_split_rules() -> None:
    splits = np.array(["train"] * 4 + ["val"] * 2)
    slides = np.array(["S1", "S1", "S2", "S2", "S3", "S3"])
    held, why = validation_split(splits, slides, "test")
    assert held.tolist() == [False] * 4 + [True] * 2 and "val split (S3)" in why
    held, why = validation_split(np.array(["train"] * 6), slides, "val")
    assert held.tolist() == [False] * 4 + [True] * 2 and "last training slide (S3)" in why
    one = np.array(["S1"] * 100)
    held, why = validation_split(np.array(["train"] * 100), one, "val")
    assert held.sum() == 30 and "random 30%" in why
    again, _ = validation_split(np.array(["train"] * 100), one, "val")
    assert (held == again).all()
