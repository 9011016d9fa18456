"""Load the hidden truth of one dataset and track: from a processed .h5ad, a release, or arrays.

Accepted sources:

- a processed dataset ``.h5ad`` (docs/ARCHITECTURE.md, "Dataset schema"): the hidden split's
  spots are kept (``evaluator.datasets.splits.hidden_mask`` on ``obs['split']``);
- a release's ``hidden/<dataset>/truth.h5ad``: every spot is hidden already (no ``split``);
- an ``.npz`` with arrays ``truth`` (spots x genes), ``mask`` (bool) and, for the spackle
  track, ``completed``; optional ``genes``.

Track truth: raw = layer ``c_d_log1p`` (X when the layer is absent), spackle = the same on
measured entries plus ``c_t_log1p`` (the SpaCKLE-completed truth over every entry). Only the
needed h5ad elements are read (patches in ``obsm`` are never loaded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from evaluator.core.vocabulary import Track
from evaluator.datasets.splits import hidden_mask
from evaluator.scoring.errors import TruthError

RAW_LAYER = "c_d_log1p"
SPACKLE_LAYER = "c_t_log1p"


@dataclass(frozen=True)
class SpotLayout:
    """Where the hidden spots lie: slide and Visium array position of each (for the spatial
    block bootstrap of ``evaluator.scoring.uncertainty``)."""

    slide_id: np.ndarray
    array_row: np.ndarray
    array_col: np.ndarray


@dataclass(frozen=True)
class TruthSet:
    """Hidden truth of one (dataset, track): values, measured mask, completed values if spackle."""

    truth: np.ndarray
    mask: np.ndarray
    completed: np.ndarray | None
    genes: list[str] | None
    dataset: str
    track: Track
    source: str
    release_id: str | None = None
    spots: SpotLayout | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(n_spots, n_genes) the predictions must have."""
        return (int(self.truth.shape[0]), int(self.truth.shape[1]))


def _matrix(source: str, name: str, value: Any) -> np.ndarray:
    """Return a dense 2-D float array from a dense or sparse stored element, or raise."""
    if hasattr(value, "toarray"):
        value = value.toarray()
    array = np.asarray(value)
    if array.ndim != 2 or array.dtype.kind not in "fiu":
        raise TruthError(
            source, f"{name} as a 2-D numeric matrix", f"{array.ndim}-D of dtype {array.dtype}"
        )
    return array if array.dtype.kind == "f" else array.astype(np.float32)


def _mask(source: str, value: Any) -> np.ndarray:
    """Return the mask as bool (stored as bool or 0/1 integers), or raise."""
    if hasattr(value, "toarray"):
        value = value.toarray()
    array = np.asarray(value)
    if array.dtype == np.bool_:
        return array
    if array.dtype.kind in "iu" and np.isin(array, (0, 1)).all():
        return array.astype(bool)
    raise TruthError(source, "mask of dtype bool (True = measured)", f"dtype {array.dtype}")


def _release_id_near(path: Path) -> str | None:
    """Return the release id from ``manifest.json`` two folders up from hidden/<ds>/truth.h5ad."""
    if path.parent.parent.name != "hidden":
        return None
    manifest = path.parent.parent.parent / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    for key in ("release_id", "id", "content_hash"):
        if isinstance(data, dict) and isinstance(data.get(key), str):
            return data[key]
    return None


def _load_h5ad(path: Path, track: Track) -> TruthSet:
    """Read the track truth, mask and gene names of the hidden spots from an .h5ad file."""
    # why here: anndata takes ~0.5 s to import; the web app (through evaluator.scoring) loads this
    # module without reading truth
    from anndata.io import read_elem

    source = str(path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise TruthError(source, "a readable .h5ad (HDF5) file", f"unreadable ({exc})") from exc
    with fh:
        layers = fh.get("layers")
        names = sorted(layers.keys()) if layers is not None else []
        if "mask" not in names:
            raise TruthError(source, "layer 'mask'", f"layers {names}")
        if RAW_LAYER in names:
            truth = _matrix(source, f"layer {RAW_LAYER!r}", read_elem(layers[RAW_LAYER]))
        elif "X" in fh:
            truth = _matrix(source, "X", read_elem(fh["X"]))
        else:
            raise TruthError(source, f"layer {RAW_LAYER!r} or X", f"layers {names} and no X")
        mask = _mask(source, read_elem(layers["mask"]))
        completed = None
        if track == "spackle":
            if SPACKLE_LAYER not in names:
                raise TruthError(
                    source, f"layer {SPACKLE_LAYER!r} (spackle-track truth)", f"layers {names}"
                )
            completed = _matrix(
                source, f"layer {SPACKLE_LAYER!r}", read_elem(layers[SPACKLE_LAYER])
            )
        obs = read_elem(fh["obs"])
        var = read_elem(fh["var"])
        dataset_attr = None
        if "uns" in fh and "dataset" in fh["uns"]:
            raw_name = read_elem(fh["uns"]["dataset"])
            dataset_attr = raw_name if isinstance(raw_name, str) else None
    rows = hidden_mask(obs["split"].to_numpy()) if "split" in obs.columns else None
    if rows is not None:
        truth = truth[rows]
        mask = mask[rows]
        completed = completed[rows] if completed is not None else None
    spots = None
    if {"slide_id", "array_row", "array_col"} <= set(obs.columns):
        keep = rows if rows is not None else slice(None)
        spots = SpotLayout(slide_id=obs["slide_id"].astype(str).to_numpy()[keep],
                           array_row=obs["array_row"].to_numpy(dtype=np.int64)[keep],
                           array_col=obs["array_col"].to_numpy(dtype=np.int64)[keep])
    in_release = path.parent.parent.name == "hidden"
    dataset = path.parent.name if in_release else (dataset_attr or path.stem)
    return _checked(
        TruthSet(
            truth=np.ascontiguousarray(truth), mask=np.ascontiguousarray(mask),
            completed=None if completed is None else np.ascontiguousarray(completed),
            genes=[str(g) for g in var.index], dataset=dataset, track=track, source=source,
            release_id=_release_id_near(path), spots=spots,
        )
    )


def _load_npz(path: Path, track: Track) -> TruthSet:
    """Read ``truth``, ``mask`` and (spackle) ``completed`` arrays from an .npz file."""
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = sorted(npz.files)
            if "truth" not in keys or "mask" not in keys:
                raise TruthError(source, "arrays 'truth' and 'mask'", f"arrays {keys}")
            truth = _matrix(source, "array 'truth'", npz["truth"])
            mask = _mask(source, npz["mask"])
            completed = None
            if track == "spackle":
                if "completed" not in keys:
                    raise TruthError(
                        source, "array 'completed' (spackle-track truth)", f"arrays {keys}"
                    )
                completed = _matrix(source, "array 'completed'", npz["completed"])
            genes = [str(g) for g in npz["genes"]] if "genes" in keys else None
    except (OSError, ValueError) as exc:
        raise TruthError(source, "a readable .npz file", f"unreadable ({exc})") from exc
    return _checked(
        TruthSet(
            truth=np.ascontiguousarray(truth), mask=np.ascontiguousarray(mask),
            completed=None if completed is None else np.ascontiguousarray(completed),
            genes=genes, dataset=path.stem, track=track, source=source,
        )
    )


def _checked(truth: TruthSet) -> TruthSet:
    """Raise ``TruthError`` unless truth, mask, completed and genes agree in shape."""
    shape = truth.truth.shape
    if truth.mask.shape != shape:
        raise TruthError(truth.source, f"mask of shape {shape}", f"{truth.mask.shape}")
    if truth.completed is not None and truth.completed.shape != shape:
        raise TruthError(
            truth.source, f"completed truth of shape {shape}", f"{truth.completed.shape}"
        )
    if truth.genes is not None and len(truth.genes) != shape[1]:
        raise TruthError(truth.source, f"{shape[1]} gene names", f"{len(truth.genes)}")
    if shape[0] == 0:
        raise TruthError(truth.source, "at least one hidden spot", "none")
    if truth.spots is not None and not (
            truth.spots.slide_id.shape == truth.spots.array_row.shape
            == truth.spots.array_col.shape == (shape[0],)):
        raise TruthError(truth.source, f"slide_id, array_row, array_col of {shape[0]} spots",
                         f"{truth.spots.slide_id.shape}, {truth.spots.array_row.shape}, "
                         f"{truth.spots.array_col.shape}")
    return truth


def load_truth(path: Path | str, *, track: Track = "raw") -> TruthSet:
    """Load the hidden truth of one dataset for ``track`` from an .h5ad or .npz file.

    Raises ``TruthError`` for a missing file, an unknown format, or missing/mismatched layers.
    """
    path = Path(path)
    if not path.is_file():
        raise TruthError(path, "an existing .h5ad or .npz file", "no such file")
    suffix = path.suffix.lower()
    if suffix == ".h5ad":
        return _load_h5ad(path, track)
    if suffix == ".npz":
        return _load_npz(path, track)
    raise TruthError(path, "a .h5ad or .npz file", f"suffix {suffix or '(none)'!r}")


def truth_from_arrays(
    truth: np.ndarray, mask: np.ndarray, *, dataset: str, track: Track = "raw",
    completed: np.ndarray | None = None, genes: list[str] | None = None,
    release_id: str | None = None, spots: SpotLayout | None = None,
) -> TruthSet:
    """Wrap in-memory arrays as a ``TruthSet`` (checked like a loaded one)."""
    source = f"<arrays:{dataset}>"
    if track == "spackle" and completed is None:
        raise TruthError(source, "completed truth for the spackle track", "none")
    return _checked(
        TruthSet(
            truth=np.ascontiguousarray(_matrix(source, "truth", truth)),
            mask=np.ascontiguousarray(_mask(source, mask)),
            completed=None if completed is None else np.ascontiguousarray(
                _matrix(source, "completed", completed)
            ),
            genes=genes, dataset=dataset, track=track, source=source, release_id=release_id,
            spots=spots,
        )
    )
