"""Load a model's ``predictions.npy`` and reject anything the predict contract does not allow.

Contract (docs/ARCHITECTURE.md, "Predict contract, version 1"): float32, shape
(n_test_spots, n_genes), rows in test.h5ad order, columns in task.genes order, every value
finite.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluator.scoring.errors import PredictionError

_NPY_MAGIC = b"\x93NUMPY"
MAX_FOUND_CHARS = 200
"""Author text quoted in a message (a header's text, a dtype) is cut to this many characters."""


def _short(text: object) -> str:
    """``text`` as a string of at most ``MAX_FOUND_CHARS`` (an .npy header can hold 64 KB)."""
    text = str(text)
    if len(text) <= MAX_FOUND_CHARS:
        return text
    return f"{text[:MAX_FOUND_CHARS]}... ({len(text)} characters)"


def _reason(exc: BaseException) -> str:
    """Why a read failed, without the file's host path."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _short(exc)


def _read_header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Return (shape, fortran_order, dtype) from an .npy header without reading the data."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise PredictionError(path, "file", "a file the evaluator can read",
                              f"an unreadable one ({_reason(exc)})") from exc
    with fh:
        if fh.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise PredictionError(
                path, "format", "a NumPy .npy file (written with np.save)",
                "a file without the .npy header",
            )
        fh.seek(0)
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        except ValueError as exc:
            raise PredictionError(
                path, "format", "a readable .npy header", f"an unreadable one ({_short(exc)})"
            ) from exc
    return tuple(int(x) for x in shape), bool(fortran), np.dtype(dtype)


def load_predictions(
    path: Path | str,
    *,
    expected_shape: tuple[int, int] | None = None,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Read and validate a predictions file; return a C-contiguous float32 (spots, genes) array.

    Raises ``PredictionError`` naming the file, the problem, what was expected and what was
    found: missing file, not .npy, too large, object/structured dtype, dtype other than float32,
    wrong number of dimensions or shape, NaN or ±inf values (with their count and first index).
    """
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        found = ("a symlink" if path.is_symlink() else "a directory" if path.is_dir()
                 else "a special file (fifo, socket or device)" if path.exists()
                 else "no such file")
        raise PredictionError(path, "file", "an existing predictions.npy file", found)
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise PredictionError(path, "size", f"at most {max_bytes} bytes", f"{size} bytes")
    shape, _fortran, dtype = _read_header(path)
    if dtype != np.float32:
        hint = " (save with preds.astype(np.float32))" if dtype.kind in "fiu" else ""
        raise PredictionError(path, "dtype", "float32", f"{_short(dtype)}{hint}")
    if len(shape) != 2:
        raise PredictionError(
            path, "shape", "a 2-D array (n_test_spots, n_genes)",
            f"{len(shape)}-D {_short(shape)}"
        )
    if expected_shape is not None and shape != tuple(expected_shape):
        hint = ""
        if shape == tuple(reversed(expected_shape)):
            hint = " (transposed? rows must be spots, columns genes)"
        raise PredictionError(
            path, "shape", f"(n_test_spots, n_genes) = {tuple(expected_shape)}", f"{shape}{hint}"
        )
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise PredictionError(path, "data", "a complete .npy file",
                              f"unreadable ({_reason(exc)})") from exc
    finite = np.isfinite(array)
    if not finite.all():
        bad = ~finite
        first = tuple(int(x) for x in np.argwhere(bad)[0])
        n_nan = int(np.isnan(array).sum())
        n_inf = int(bad.sum()) - n_nan
        raise PredictionError(
            path, "values", "all values finite",
            f"{n_nan} NaN and {n_inf} inf, first at (spot, gene) {first}",
        )
    return np.ascontiguousarray(array)
