"""Stage a job's read-only /input folder: task.json, the two .h5ad files and their patches.

The folder holds ``INPUT_FILES``: task.json, train.h5ad, test.h5ad, train_patches.npy and
test_patches.npy. The patches are a release's own files (hard links: no pixel is copied to
stage a job), and each .h5ad names its .npy as HDF5 external storage for
``obsm['patches_scale_1.0']``, so contract-version-1 readers still find the patches in the
file (``INPUT_ENVIRONMENT`` tells HDF5 to look beside it).

Evaluation inputs come from a release's public files (hard links, or copies across file
systems): ``<staging>/<release_id>/evaluation/<dataset>/<track>/<task_key>/``, linking the
files of ``.../<track>/data/`` (built once per release, dataset and track). Validation
inputs (``spared-bench check``) are built from the public training file alone (see
``validation_split``): their data files are written once under
``<staging>/<release_id>/validation-v<N>/<dataset>/<track>/data/``, their truth beside them in
``truth.npz`` (never in the folder that is mounted), and each task folder links to the data.

``task_key`` is a hash of task.json's content: the data files are shared by every job of a
(release, dataset, track), while task.json follows the job's time limit, device and seed.
Folders are built in a temporary folder and renamed into place (atomic, safe between
processes), then made read-only (files 0444, folders 0555). No folder here ever holds truth.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np

from evaluator.contract import (
    CONTRACT_VERSION,
    INPUT_FILES,
    TASK_FILE,
    TEST_FILE,
    TEST_PATCHES_FILE,
    TRAIN_FILE,
    TRAIN_PATCHES_FILE,
    JobLimits,
    TaskSpec,
    read_task,
    task_json,
)
from evaluator.core.fsio import atomic_path, link_or_copy
from evaluator.datasets.patches import NpyWriter, PatchRows, link_external_patches, npy_data_offset
from evaluator.datasets.release import Release, Track
from evaluator.datasets.schema import MASK_LAYER, SPATIAL_KEY, read_h5ad
from evaluator.datasets.store import write_h5ad
from evaluator.jobs.errors import StagingError

Purpose = Literal["evaluation", "validation"]
TRUTH_FILE = "truth.npz"
VALIDATION_HOLDOUT_FRACTION = 0.3
"""Share of a single-slide dataset's spots held out for validation."""
VALIDATION_SEED = 0
VALIDATION_SPLIT_VERSION = 2
"""Bump when ``validation_split`` changes: cached validation data of another rule is not reused."""


@dataclass(frozen=True)
class TaskSettings:
    """The per-job part of task.json: time limit, device, seed and every limit of the run."""

    time_limit_s: float
    device: Literal["cuda", "cpu"] = "cpu"
    seed: int = 0
    limits: JobLimits | None = None


@dataclass(frozen=True)
class StagedInputs:
    """A staged, read-only input folder and where its truth is (never inside it).

    ``truth_path`` is the release's ``hidden/<dataset>/truth.h5ad`` for evaluation and the
    validation ``truth.npz`` for validation; ``holdout`` says which spots validation held out.
    """

    input_dir: Path
    task: TaskSpec
    purpose: Purpose
    release_id: str
    truth_path: Path
    holdout: str = ""


def task_key(task: TaskSpec) -> str:
    """A short content hash of task.json: folders with the same key hold the same task."""
    return hashlib.sha256(task_json(task).encode()).hexdigest()[:16]


def _make_read_only(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o444)
    folder.chmod(0o555)


def make_writable(folder: Path) -> None:
    """Undo ``_make_read_only`` on a staged folder tree (for deletion)."""
    for root, dirs, _files in os.walk(folder):
        for name in dirs:
            (Path(root) / name).chmod(0o755)
    folder.chmod(0o755)


def _check_staged(folder: Path, task: TaskSpec) -> None:
    """Refuse a cached folder that is not exactly the expected read-only input files."""
    present = sorted(p.name for p in folder.iterdir())
    if present != sorted(INPUT_FILES):
        raise StagingError(folder, f"exactly {sorted(INPUT_FILES)}", f"{present}")
    if read_task(folder / TASK_FILE) != task:
        raise StagingError(folder / TASK_FILE, "the task it is named after", "another task")
    for path in folder.iterdir():
        if path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            raise StagingError(path, "a read-only file", f"mode {oct(path.stat().st_mode)[-3:]}")


DATA_FILES: tuple[str, ...] = (TRAIN_FILE, TEST_FILE, TRAIN_PATCHES_FILE, TEST_PATCHES_FILE)


def _data_files(data_dir: Path) -> dict[str, Path]:
    return {name: data_dir / name for name in DATA_FILES}


def _input_h5ad(source: Path, target: Path, patches_name: str, patches: Path) -> None:
    """Copy a patch-less .h5ad and give it the patches of ``patches`` as external storage."""
    shutil.copyfile(source, target)
    target.chmod(0o644)
    link_external_patches(target, patches_name, patches)


def _build_evaluation_data(release: Release, dataset: str, track: Track, data_dir: Path) -> None:
    """Write the data files of an evaluation (.h5ad views, patch links) atomically."""
    with atomic_path(data_dir, directory=True) as tmp:
        link_or_copy(release.train_patches_path(dataset), tmp / TRAIN_PATCHES_FILE)
        link_or_copy(release.test_patches_path(dataset), tmp / TEST_PATCHES_FILE)
        _input_h5ad(release.train_path(dataset, track), tmp / TRAIN_FILE, TRAIN_PATCHES_FILE,
                    tmp / TRAIN_PATCHES_FILE)
        _input_h5ad(release.test_inputs_path(dataset), tmp / TEST_FILE, TEST_PATCHES_FILE,
                    tmp / TEST_PATCHES_FILE)
        for name in (TRAIN_FILE, TEST_FILE):
            (tmp / name).chmod(0o444)
        tmp.chmod(0o755)


def _ensure(data_dir: Path, build: Callable[[Path], object]) -> None:
    """Build ``data_dir`` once (``build(data_dir)``); another process's rename wins a race."""
    if data_dir.is_dir():
        return
    try:
        build(data_dir)
    except OSError:
        if not data_dir.is_dir():
            raise


def _materialize(folder: Path, task: TaskSpec, files: Mapping[str, Path]) -> Path:
    """Create ``folder`` (atomically) with task.json and links to ``files``; reuse it if there."""
    if folder.is_dir():
        _check_staged(folder, task)
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        (tmp / TASK_FILE).write_text(task_json(task))
        for name, source in files.items():
            link_or_copy(source, tmp / name)
        _make_read_only(tmp)
        tmp.chmod(0o755)  # rename needs no write on tmp, but rmtree on failure does
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():
                raise
            # Staged concurrently by another process: same content by construction.
            make_writable(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
        folder.chmod(0o555)
    except BaseException:
        if tmp.exists():
            make_writable(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    _check_staged(folder, task)
    return folder


def evaluation_task(release: Release, dataset: str, track: Track,
                    settings: TaskSettings) -> TaskSpec:
    """The task.json of an evaluation job: the hidden split's spots, genes in release order."""
    record = release.dataset(dataset)
    release.train_path(dataset, track)  # raises for a track the release lacks
    return TaskSpec(
        contract_version=CONTRACT_VERSION, dataset=record.name, track=track,
        genes=list(record.genes), n_test_spots=record.n_hidden_spots,
        patch_shape=record.patch_shape, time_limit_s=settings.time_limit_s,
        device=settings.device, seed=settings.seed, limits=settings.limits,
    )


def stage_evaluation_inputs(release: Release, dataset: str, track: Track, settings: TaskSettings,
                            staging_root: Path) -> StagedInputs:
    """Stage (or reuse) the input folder of an evaluation job from the release's public files.

    Raises ``BenchError`` for a dataset or track the release lacks, ``StagingError`` for a
    cached folder that was altered.
    """
    task = evaluation_task(release, dataset, track, settings)
    folder = (Path(staging_root) / release.release_id / "evaluation" / task.dataset / track
              / task_key(task))
    data_dir = folder.parent / "data"
    _ensure(data_dir, lambda d: _build_evaluation_data(release, dataset, track, d))
    _materialize(folder, task, _data_files(data_dir))
    return StagedInputs(input_dir=folder, task=task, purpose="evaluation",
                        release_id=release.release_id, truth_path=release.truth_path(dataset))


# ---------------------------------------------------------------------------------------------
# Validation: a task like an evaluation task, from public data only
# ---------------------------------------------------------------------------------------------


def validation_split(splits: np.ndarray, slides: np.ndarray,
                     hidden_split: str) -> tuple[np.ndarray, str]:
    """Choose the held-out spots of a validation task from a public training file.

    Returns (held-out rows, description). The rule, in order:
    - the hidden split is ``test``: the public file holds ``train`` and ``val`` spots; the
      ``val`` slides are held out (what SpaRED validates on);
    - otherwise (the hidden split is ``val``, so the public file is train only) with two or more
      slides: the last slide in sorted order is held out;
    - a single slide: a seeded random ``VALIDATION_HOLDOUT_FRACTION`` of its spots. Spots
      of one slide share its colour and batch, as a hidden slide shares its own; neighbouring
      spots are correlated, so this validation is optimistic (said in the description).
    """
    splits = np.asarray(splits).astype(str)
    slides = np.asarray(slides).astype(str)
    if hidden_split == "test" and (splits == "val").any() and (splits != "val").any():
        held = splits == "val"
        return held, f"the val split ({', '.join(sorted(set(slides[held])))})"
    names = sorted(set(slides))
    if len(names) > 1:
        return slides == names[-1], f"the last training slide ({names[-1]})"
    n = len(slides)
    rng = np.random.default_rng(VALIDATION_SEED)
    held = np.zeros(n, dtype=bool)
    held[rng.permutation(n)[: max(1, round(n * VALIDATION_HOLDOUT_FRACTION))]] = True
    return held, (f"a random {held.mean():.0%} of the spots of the only training slide "
                  f"({names[0] if names else '?'}; optimistic: neighbours are correlated)")


def _build_validation_patches(release: Release, dataset: str, held: np.ndarray,
                              patches_dir: Path) -> None:
    """Split the public patches into validation train and held-out .npy files, in chunks."""
    path = release.train_patches_path(dataset)
    _, shape, _ = npy_data_offset(path)
    source = PatchRows([(path, None, shape[0])], int(np.prod(shape[1:])))
    with atomic_path(patches_dir, directory=True) as tmp:
        writers = (NpyWriter(tmp / TRAIN_PATCHES_FILE, int((~held).sum()), shape[1:]),
                   NpyWriter(tmp / TEST_PATCHES_FILE, int(held.sum()), shape[1:]))
        for first, block in source.iter_blocks():
            part = held[first:first + len(block)]
            writers[0].write(block[~part])
            writers[1].write(block[part])
        for writer in writers:
            writer.close()
        for name in (TRAIN_PATCHES_FILE, TEST_PATCHES_FILE):
            (tmp / name).chmod(0o444)
        tmp.chmod(0o755)


def _build_validation_data(release: Release, dataset: str, track: Track, data_dir: Path
                           ) -> str:
    """Write validation train/test .h5ad, their patches (shared by tracks) and truth.npz."""
    record = release.dataset(dataset)
    public = read_h5ad(release.train_path(dataset, track))
    held, description = validation_split(
        public.obs["split"].to_numpy(), public.obs["slide_id"].to_numpy(), record.hidden_split)
    if held.all() or not held.any():
        raise StagingError(release.train_path(dataset, track),
                           "public spots to split into validation train and held-out spots",
                           f"{len(held)} spots that cannot be split")
    # The held-out spots depend on obs only, the same in both tracks: one copy of the pixels.
    patches_dir = data_dir.parent.parent / "patches"
    _ensure(patches_dir, lambda d: _build_validation_patches(release, dataset, held, d))
    with atomic_path(data_dir, directory=True) as tmp:
        for name in (TRAIN_PATCHES_FILE, TEST_PATCHES_FILE):
            link_or_copy(patches_dir / name, tmp / name)
        train = public[~held].copy()
        write_h5ad(train, tmp / TRAIN_FILE)
        test_obs = public.obs.loc[held].copy()
        # The held-out spots play the hidden split: labelled as such, like test_inputs.h5ad.
        test_obs["split"] = "val"
        test_obs["split"] = test_obs["split"].astype("category")
        for column in ("slide_id", "patient"):
            test_obs[column] = test_obs[column].astype(str).astype("category")
        test = ad.AnnData(
            obs=test_obs, var=public.var.copy(),
            obsm={SPATIAL_KEY: np.asarray(public.obsm[SPATIAL_KEY])[held]},
            uns={k: v for k, v in public.uns.items() if k in ("patch_shape", "dataset")},
        )
        write_h5ad(test, tmp / TEST_FILE)
        for name, patches in ((TRAIN_FILE, TRAIN_PATCHES_FILE), (TEST_FILE, TEST_PATCHES_FILE)):
            link_external_patches(tmp / name, patches, tmp / patches)
        values = np.asarray(public.X, dtype=np.float32)[held]
        mask = np.asarray(public.layers[MASK_LAYER]).astype(bool)[held]
        arrays = {"truth": values, "mask": mask, "genes": np.asarray(record.genes)}
        if track == "spackle":
            # Public spackle data is completed: it is both the measured truth (on mask) and
            # the completed truth (everywhere) of the held-out spots.
            arrays["completed"] = values
        with atomic_path(tmp / TRUTH_FILE) as truth_tmp, open(truth_tmp, "wb") as fh:
            np.savez(fh, **arrays)
        (tmp / "holdout.txt").write_text(description + "\n")
        for path in tmp.iterdir():
            path.chmod(0o444)
        tmp.chmod(0o755)
    return description


def stage_validation_inputs(release: Release, dataset: str, track: Track, settings: TaskSettings,
                            staging_root: Path) -> StagedInputs:
    """Stage (or reuse) a validation job's inputs: public data split like an evaluation.

    The task is built exactly like an evaluation task (same keys, genes, patch shape); only
    the spots differ (see ``validation_split``). Its truth is the held-out spots' public
    expression, in ``truth.npz`` beside (not inside) the input folder.
    """
    record = release.dataset(dataset)
    release.train_path(dataset, track)
    base = (Path(staging_root) / release.release_id / f"validation-v{VALIDATION_SPLIT_VERSION}"
            / record.name / track)
    data_dir = base / "data"
    _ensure(data_dir, lambda d: _build_validation_data(release, dataset, track, d))
    holdout = (data_dir / "holdout.txt").read_text().strip()
    with np.load(data_dir / TRUTH_FILE, allow_pickle=False) as npz:
        n_test = int(npz["truth"].shape[0])
    task = TaskSpec(
        contract_version=CONTRACT_VERSION, dataset=record.name, track=track,
        genes=list(record.genes), n_test_spots=n_test, patch_shape=record.patch_shape,
        time_limit_s=settings.time_limit_s, device=settings.device, seed=settings.seed,
        limits=settings.limits,
    )
    folder = base / task_key(task)
    _materialize(folder, task, _data_files(data_dir))
    return StagedInputs(input_dir=folder, task=task, purpose="validation",
                        release_id=release.release_id, truth_path=data_dir / TRUTH_FILE,
                        holdout=holdout)


def stage_inputs(purpose: Purpose, release: Release, dataset: str, track: Track,
                 settings: TaskSettings, staging_root: Path) -> StagedInputs:
    """Stage the inputs of an evaluation or a validation job (see the two functions)."""
    if purpose == "evaluation":
        return stage_evaluation_inputs(release, dataset, track, settings, staging_root)
    return stage_validation_inputs(release, dataset, track, settings, staging_root)
