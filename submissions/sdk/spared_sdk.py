"""spared_sdk: read a SpaRED Bench task and its inputs, write predictions (contract version 1).

One file, no dependency beyond numpy and h5py: copy it next to your code or
``pip install submissions/sdk``. It imports nothing of the evaluator.

    import spared_sdk as sdk

    task = sdk.read_task()              # /input/task.json
    device = sdk.device(task)           # "cuda" when asked for and visible, else "cpu"
    train = sdk.load_train()            # /input/train.h5ad: X, mask, patches, obs, ...
    test = sdk.load_test()              # /input/test.h5ad: patches, obs, ... (no X, no mask)
    for rows, batch in sdk.iter_patches(test, batch_size=256):   # (b, H, W, 3) uint8
        ...
    preds = ...                         # (task.n_test_spots, len(task.genes))
    sdk.write_predictions(preds, task)  # /output/predictions.npy, checked first
    sdk.write_model_card("my-model", {"lr": 1e-3})   # optional /output/model.json

Real-size patches (224 x 224 x 3, 150 KB a spot, up to 6.6 GB a dataset) are not read into
memory: ``Spots.patches`` is a read-only memory map of ``train_patches.npy`` /
``test_patches.npy``. ``iter_patches`` and ``read_patches`` read batches with plain reads, so
the process holds only the batch (pages touched through a memory map stay in its resident
memory until the kernel needs them back).

The folders are /input and /output in the evaluator's container; ``SPARED_INPUT_DIR`` and
``SPARED_OUTPUT_DIR`` override them (the local runner sets both). See CONTRACT.md.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

__version__ = "1.2.0"
CONTRACT_VERSION = 1
PATCHES_KEY = "patches_scale_1.0"
SPATIAL_KEY = "spatial"
_TASK_KEYS = ("contract_version", "dataset", "track", "genes", "n_test_spots", "patch_shape",
              "time_limit_s", "device", "seed")

__all__ = [
    "CONTRACT_VERSION",
    "ContractViolation",
    "Spots",
    "Task",
    "device",
    "input_dir",
    "iter_patches",
    "load_test",
    "load_train",
    "output_dir",
    "read_patches",
    "read_task",
    "training_weights",
    "write_model_card",
    "write_predictions",
]


class ContractViolation(ValueError):
    """Something breaks the predict contract (bad task.json, predictions of the wrong shape)."""


def input_dir() -> Path:
    """The job's input folder: ``$SPARED_INPUT_DIR`` or /input."""
    return Path(os.environ.get("SPARED_INPUT_DIR", "/input"))


def output_dir() -> Path:
    """The job's output folder: ``$SPARED_OUTPUT_DIR`` or /output."""
    return Path(os.environ.get("SPARED_OUTPUT_DIR", "/output"))


@dataclass(frozen=True)
class Task:
    """The content of task.json: what to predict, and the limits of this run."""

    contract_version: int
    dataset: str
    track: str
    genes: list[str]
    n_test_spots: int
    patch_shape: tuple[int, int, int]
    time_limit_s: float
    device: str
    seed: int

    @property
    def n_genes(self) -> int:
        """Number of prediction columns."""
        return len(self.genes)


def device(task: Task, *, warn: bool = True) -> str:
    """Return the torch device to compute on: ``"cuda"`` when the task asks for it and torch
    sees a GPU, else ``"cpu"``.

    When the task says ``cuda`` and no GPU is usable here (torch missing, a CPU-only torch
    build, or no GPU visible in the container), a warning naming the reason goes to stderr,
    because the model would otherwise train on the CPU without a word. Imports torch only
    when the task asks for ``cuda``.
    """
    if task.device != "cuda":
        return "cpu"
    try:
        # why here: torch is optional in an author's image; only a task on cuda needs it
        import torch
    except ImportError:
        reason = "torch is not installed in this image"
    else:
        if torch.cuda.is_available():
            return "cuda"
        reason = ("this torch is a CPU-only build (torch.version.cuda is None): build FROM a "
                  "CUDA base image, see CONTRACT.md" if torch.version.cuda is None
                  else "no GPU is visible in this container")
    if warn:
        print(f"spared_sdk: warning: task.device is 'cuda' but {reason}; computing on the CPU",
              file=sys.stderr, flush=True)
    return "cpu"


def read_task(folder: Path | str | None = None) -> Task:
    """Read task.json from ``folder`` (default: the input folder); raise ContractViolation."""
    path = Path(folder or input_dir()) / "task.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ContractViolation(f"{path}: expected a readable JSON file, found {exc}") from exc
    if not isinstance(data, dict):
        raise ContractViolation(f"{path}: expected a JSON object, found {type(data).__name__}")
    if data.get("contract_version") != CONTRACT_VERSION:
        raise ContractViolation(
            f"{path}: key 'contract_version': expected {CONTRACT_VERSION} (this SDK is "
            f"{__version__}), found {data.get('contract_version')!r}; update spared_sdk.py")
    missing = [k for k in _TASK_KEYS if k not in data]
    if missing:
        raise ContractViolation(f"{path}: expected keys {missing}, found them missing")
    shape = tuple(int(x) for x in data["patch_shape"])
    if len(shape) != 3:
        raise ContractViolation(f"{path}: key 'patch_shape': expected [height, width, 3], "
                                f"found {data['patch_shape']!r}")
    return Task(
        contract_version=int(data["contract_version"]), dataset=str(data["dataset"]),
        track=str(data["track"]), genes=[str(g) for g in data["genes"]],
        n_test_spots=int(data["n_test_spots"]), patch_shape=shape,
        time_limit_s=float(data["time_limit_s"]), device=str(data["device"]),
        seed=int(data["seed"]),
    )


@dataclass
class Spots:
    """The spots of one input file, as plain numpy arrays.

    ``X`` (spots x genes, float32) is the track's expression and ``mask`` (bool, True =
    measured) its measured entries: both None for test.h5ad. ``patches`` is (spots, H, W, 3)
    uint8, a read-only memory map of the ``*_patches.npy`` beside the .h5ad (an in-memory array
    only where the folder has no such file); ``spatial`` (spots, 2) pixel coordinates; ``obs``
    the per-spot columns (``slide_id``, ``patient``, ``split``, ``array_row``, ``array_col``) as
    arrays; ``spot_ids`` the row names.
    """

    genes: list[str]
    spot_ids: np.ndarray
    obs: dict[str, np.ndarray]
    patches: np.ndarray
    spatial: np.ndarray
    X: np.ndarray | None = None
    mask: np.ndarray | None = None
    uns: dict[str, Any] = field(default_factory=dict)

    @property
    def n_spots(self) -> int:
        """Number of spots (rows)."""
        return int(self.patches.shape[0])

    @property
    def slide_ids(self) -> np.ndarray:
        """Slide of each spot (str array): slides differ in colour and composition."""
        return self.obs["slide_id"]


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    return np.asarray(dataset.asstr()[()], dtype=object).astype(str)


def _column(node: h5py.Dataset | h5py.Group) -> np.ndarray:
    """Decode one obs column: categorical groups, string arrays and numbers."""
    if isinstance(node, h5py.Group):
        codes = node["codes"][()]
        categories = _column(node["categories"])
        out = np.empty(codes.shape, dtype=categories.dtype)
        valid = codes >= 0
        out[valid] = categories[codes[valid]]
        return out
    if h5py.check_string_dtype(node.dtype) is not None or node.dtype.kind in "SO":
        return _strings(node)
    return node[()]


def _matrix(node: h5py.Dataset | h5py.Group) -> np.ndarray:
    """Read a dense dataset or a CSR/CSC sparse group as a dense array."""
    if isinstance(node, h5py.Dataset):
        return node[()]
    encoding = node.attrs.get("encoding-type", "")
    shape = tuple(int(x) for x in node.attrs["shape"])
    data, indices, indptr = node["data"][()], node["indices"][()], node["indptr"][()]
    out = np.zeros(shape, dtype=data.dtype)
    if encoding == "csr_matrix":
        rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
        out[rows, indices] = data
    elif encoding == "csc_matrix":
        cols = np.repeat(np.arange(shape[1]), np.diff(indptr))
        out[indices, cols] = data
    else:
        raise ContractViolation(f"expected a dense or CSR/CSC matrix, found {encoding!r}")
    return out


def _read_spots(path: Path) -> Spots:
    if not path.is_file():
        raise ContractViolation(f"{path}: expected an .h5ad file, found no such file")
    with h5py.File(path, "r") as fh:
        obs_group = fh["obs"]
        index_key = obs_group.attrs.get("_index", "_index")
        spot_ids = _column(obs_group[index_key])
        obs = {name: _column(obs_group[name]) for name in obs_group if name != index_key}
        var_group = fh["var"]
        genes = [str(g) for g in _column(var_group[var_group.attrs.get("_index", "_index")])]
        uns: dict[str, Any] = {}
        if "uns" in fh:
            for key, node in fh["uns"].items():
                if isinstance(node, h5py.Dataset):
                    value = node.asstr()[()] if h5py.check_string_dtype(node.dtype) else node[()]
                    uns[key] = value.tolist() if isinstance(value, np.ndarray) else value
        beside = path.with_name(f"{path.stem}_patches.npy")
        flat = None if beside.is_file() else fh["obsm"][PATCHES_KEY][()]
        spatial = fh["obsm"][SPATIAL_KEY][()]
        X = _matrix(fh["X"]).astype(np.float32) if "X" in fh else None
        mask = None
        if "layers" in fh and "mask" in fh["layers"]:
            mask = _matrix(fh["layers"]["mask"]).astype(bool)
    if flat is None:
        patches = np.load(beside, mmap_mode="r")
        if patches.dtype != np.uint8 or patches.ndim != 4 or len(patches) != len(spot_ids):
            raise ContractViolation(f"{beside}: expected ({len(spot_ids)}, H, W, 3) uint8, "
                                    f"found {patches.shape} {patches.dtype}")
    else:
        shape = uns.get("patch_shape")
        if shape is None:
            side = round((flat.shape[1] / 3) ** 0.5)
            shape = [side, side, 3]
        patches = np.asarray(flat, dtype=np.uint8).reshape(len(flat), *[int(s) for s in shape])
    return Spots(genes=genes, spot_ids=spot_ids, obs=obs, patches=patches, spatial=spatial,
                 X=X, mask=mask, uns=uns)


def load_train(folder: Path | str | None = None) -> Spots:
    """Read train.h5ad: public spots with ``X`` (the track's expression) and ``mask``.

    Raw track: ``X`` is 0 where ``mask`` is False (not measured); fit on mask-True entries.
    Spackle track: ``X`` is complete (SpaCKLE filled the gaps); ``mask`` says what was measured.
    """
    return _read_spots(Path(folder or input_dir()) / "train.h5ad")


def load_test(folder: Path | str | None = None) -> Spots:
    """Read test.h5ad: the spots to predict, in prediction row order (no X, no mask)."""
    return _read_spots(Path(folder or input_dir()) / "test.h5ad")


def read_patches(spots: Spots, rows: Any) -> np.ndarray:
    """Return the patches of ``rows`` (indices, in that order) as an in-memory (k, H, W, 3) array.

    Reads the .npy with plain reads (runs of consecutive rows at once), so the process's
    resident memory holds what is returned and nothing more. Raises ContractViolation for a
    row outside the file.
    """
    index = np.asarray(rows, dtype=np.int64).ravel()
    patches = spots.patches
    n = len(patches)
    if index.size and (index.min() < 0 or index.max() >= n):
        raise ContractViolation(f"rows: expected indices in [0, {n}), found "
                                f"{int(index.min())}..{int(index.max())}")
    if not isinstance(patches, np.memmap) or patches.filename is None:
        return np.asarray(patches[index])
    row_bytes = int(np.prod(patches.shape[1:]))
    out = np.empty((len(index), *patches.shape[1:]), dtype=np.uint8)
    flat = out.reshape(-1).data
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    fd = os.open(patches.filename, os.O_RDONLY)
    try:
        for run in np.split(np.arange(len(index)), breaks):
            if not run.size:
                continue
            target = flat[int(run[0]) * row_bytes:(int(run[-1]) + 1) * row_bytes]
            position = patches.offset + int(index[run[0]]) * row_bytes
            while len(target):
                got = os.preadv(fd, [target], position)
                if got <= 0:
                    raise ContractViolation(f"{patches.filename}: expected {len(target)} more "
                                            f"bytes at offset {position}, found the end")
                target, position = target[got:], position + got
    finally:
        os.close(fd)
    return out


def iter_patches(spots: Spots, batch_size: int = 256,
                 rows: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (row indices, patches) in batches: (b,) int64 and (b, H, W, 3) uint8 in memory.

    ``rows`` (indices or a boolean mask) restricts and orders the spots, e.g. a shuffled
    permutation for training; default: all spots in file order. Only one batch is resident at
    a time, whatever the dataset's size.
    """
    if batch_size < 1:
        raise ContractViolation(f"batch_size: expected at least 1, found {batch_size}")
    order = np.arange(spots.n_spots) if rows is None else np.asarray(rows)
    if order.dtype == np.bool_:
        order = np.flatnonzero(order)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        yield index, read_patches(spots, index)


def training_weights(train: Spots, track: str) -> np.ndarray:
    """Which training entries to fit (float32 0/1): measured ones on raw, all on spackle."""
    if train.X is None or train.mask is None:
        raise ContractViolation("expected training spots with X and mask, found test spots")
    if track == "raw":
        return train.mask.astype(np.float32)
    return np.ones(train.X.shape, dtype=np.float32)


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_predictions(predictions: Any, task: Task | None = None,
                      folder: Path | str | None = None) -> Path:
    """Check and write predictions.npy (float32, (n_test_spots, n_genes), finite).

    Floats of another precision are cast to float32. Raises ContractViolation, before writing
    anything, for a wrong shape or non-finite values: the evaluator would reject them.
    """
    array = np.asarray(predictions)
    if array.dtype.kind not in "fiu":
        raise ContractViolation(f"predictions: expected numbers, found dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if task is not None and array.shape != (task.n_test_spots, task.n_genes):
        raise ContractViolation(
            f"predictions: expected shape (n_test_spots, n_genes) = "
            f"({task.n_test_spots}, {task.n_genes}), found {array.shape}")
    if array.ndim != 2:
        raise ContractViolation(f"predictions: expected a 2-D array, found shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(x) for x in np.argwhere(bad)[0])
        raise ContractViolation(f"predictions: expected all values finite, found {int(bad.sum())} "
                                f"NaN/inf, first at (spot, gene) {first}")
    path = Path(folder or output_dir()) / "predictions.npy"
    _atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False))
    return path


def write_model_card(name: str, parameters: dict[str, Any] | None = None, notes: str = "",
                     folder: Path | str | None = None) -> Path:
    """Write the optional model.json (name, parameters, notes) shown with the results.

    The file is strict JSON: a non-finite float (``float('nan')``, ``inf``) is written as the
    string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``; numpy scalars and arrays as numbers
    and lists.
    """
    card = _json_ready({"name": name, "parameters": parameters or {}, "notes": notes})
    data = (json.dumps(card, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    path = Path(folder or output_dir()) / "model.json"
    _atomic_write(path, lambda fh: fh.write(data))
    return path


def _json_ready(value: Any) -> Any:
    """``value`` with non-finite floats as strings and numpy values as Python ones."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value
