"""Patches at real size: read, write and link them in chunks, never all at once.

SpaRED's patches are 224 x 224 x 3 uint8 per spot (150,528 bytes; 6.6 GB for its largest
dataset), so every stage that touches them streams rows in chunks whose size follows a byte
budget (``PATCH_CHUNK_BYTES``), not the dataset:

- ``open_processed`` opens a processed ``.h5ad`` with everything *but* the patches in memory and
  the patches as the file's own HDF5 dataset, read a chunk of rows at a time;
- ``NpyWriter`` writes an ``(n, H, W, 3)`` uint8 ``.npy`` from chunks, hashing as it writes;
- ``write_h5ad_with_patches`` writes an AnnData and then appends ``obsm['patches_scale_1.0']``
  from chunks;
- ``link_external_patches`` gives an ``.h5ad`` an ``obsm['patches_scale_1.0']`` whose bytes live
  in a ``.npy`` beside it (HDF5 external storage), so readers of contract version 1 see the
  patches in the file without a second copy of the pixels. HDF5 resolves the ``.npy`` against
  ``$HDF5_EXTFILE_PREFIX``; ``EXTFILE_ENV`` (``${ORIGIN}``: the ``.h5ad``'s own folder) is set
  for every submission by both runners.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import queue
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import h5py
import numpy as np

from evaluator.core.errors import InputFileError, SchemaError
from evaluator.datasets.schema import PATCHES_KEY, validate_dataset
from evaluator.datasets.splits import split_table_problems

if TYPE_CHECKING:
    import anndata as ad

    from evaluator.datasets.registry import SplitTable

# 8 MiB, not more: a buffer above glibc's mmap threshold (at most 32 MiB) is a fresh mapping
# each time, every page of it faulted in and zeroed: reading a file in 64 MiB pieces ran at
# 0.7-1.8 GB/s here, in 8 MiB pieces at 5.9 GB/s (the allocator reuses them).
PATCH_CHUNK_BYTES = 8 * 1024 * 1024
"""Byte budget of one chunk of patch rows held in memory (about 445 patches at 224 px)."""

EXTFILE_ENV: dict[str, str] = {"HDF5_EXTFILE_PREFIX": "${ORIGIN}"}
"""Environment that makes HDF5 find an external ``.npy`` beside the ``.h5ad`` that names it."""

# anndata's on-disk encoding of a dense array (obsm entries are written this way).
_ARRAY_ATTRS = {"encoding-type": "array", "encoding-version": "0.2.0"}


def chunk_rows(row_bytes: int, budget_bytes: int = PATCH_CHUNK_BYTES) -> int:
    """Rows of ``row_bytes`` each that fit the budget (at least one)."""
    return max(1, budget_bytes // max(1, row_bytes))


def iter_row_chunks(n_rows: int, row_bytes: int,
                    budget_bytes: int = PATCH_CHUNK_BYTES) -> Iterator[slice]:
    """Slices of consecutive rows covering ``range(n_rows)``, each within the byte budget."""
    step = chunk_rows(row_bytes, budget_bytes)
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def _read_elem(node: object) -> object:
    # why here: anndata takes ~0.5 s to import; the web app loads this module without reading an
    # .h5ad file
    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem
    return read_elem(node)


@contextlib.contextmanager
def open_processed(path: Path | str) -> Iterator[tuple[ad.AnnData, h5py.Dataset | None]]:
    """Open a processed ``.h5ad``: (AnnData without the patches, the patches' HDF5 dataset).

    Everything else (X, layers, obs, var, obsm['spatial'], uns) is read into memory; the
    patches stay on disk until read by row slices (``patches[a:b]``), and the dataset is only
    valid inside the ``with`` block. ``None`` when the file has no patches. Raises
    ``InputFileError`` for a missing or unreadable file.
    """
    # why here: anndata is slow to import (see _read_elem)
    import anndata as ad


    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "expected an existing .h5ad file, found nothing at this path")
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise InputFileError(path, f"expected an AnnData .h5ad (HDF5) file, found something "
                                   f"unreadable ({exc})") from exc
    with fh:
        try:
            with warnings.catch_warnings():
                # Old SpaRED files trigger anndata's format-upgrade warnings; they are harmless.
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", UserWarning)
                parts = {key: _read_elem(fh[key]) for key in
                         ("X", "obs", "var", "uns", "layers", "obsp", "varm", "varp")
                         if key in fh}
                obsm_group = fh.get("obsm")
                obsm = {key: _read_elem(node) for key, node in (obsm_group or {}).items()
                        if key != PATCHES_KEY}
                adata = ad.AnnData(**parts, obsm=obsm)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise InputFileError(path, f"expected an AnnData .h5ad (HDF5) file, found something "
                                       f"unreadable ({exc})") from exc
        patches = obsm_group.get(PATCHES_KEY) if obsm_group is not None else None
        if patches is not None and not isinstance(patches, h5py.Dataset):
            raise InputFileError(path, f"expected obsm['{PATCHES_KEY}'] to be a dense array, "
                                       f"found an encoded group ({dict(patches.attrs)})")
        yield adata, patches


class BackgroundSha256:
    """sha256 computed on a thread: ``update`` queues a buffer, ``hexdigest`` waits for all.

    hashlib releases the GIL on large buffers, so hashing runs beside the caller's reads and
    writes (on another core). Queued buffers must not be changed afterwards; at most
    ``depth`` of them wait, which bounds the memory held.
    """

    def __init__(self, depth: int = 2) -> None:
        self._digest = hashlib.sha256()
        self._queue: queue.Queue[memoryview | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._result: str | None = None

    def _run(self) -> None:
        while (buffer := self._queue.get()) is not None:
            self._digest.update(buffer)

    def update(self, buffer: bytes | memoryview) -> None:
        """Queue ``buffer`` for hashing (blocks while ``depth`` buffers wait)."""
        self._queue.put(memoryview(buffer))

    def hexdigest(self) -> str:
        """Wait for the queued buffers and return the hex digest (the hash is then closed)."""
        if self._result is None:
            self._queue.put(None)
            self._thread.join()
            self._result = self._digest.hexdigest()
        return self._result


class NpyWriter:
    """Write an ``(n, *shape)`` uint8 ``.npy`` from chunks of rows; sha256 computed on the way.

    The header is written first, the rows are appended by ``write``; ``close`` checks that
    exactly ``n`` rows came. Plain buffered writes (no memory map), so resident memory stays
    at a few chunks; the hash runs on a thread (``BackgroundSha256``). With ``path=None``
    nothing is written: the sha256 of the file that would be written is computed.
    """

    def __init__(self, path: Path | str | None, n_rows: int, row_shape: tuple[int, ...]
                 ) -> None:
        self.path = Path(path) if path is not None else None
        self.n_rows = n_rows
        self.row_shape = tuple(int(s) for s in row_shape)
        self.row_bytes = int(np.prod(self.row_shape))
        self.written = 0
        self._digest = BackgroundSha256()
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                  "fortran_order": False, "shape": (n_rows, *self.row_shape)}
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, header)
        self.header_bytes = buffer.tell()
        self._digest.update(buffer.getvalue())
        self._fh: BinaryIO | None = None
        if self.path is not None:
            self._fh = open(self.path, "wb")  # noqa: SIM115 (closed in close())
            self._fh.write(buffer.getvalue())

    def write(self, rows: np.ndarray) -> None:
        """Append rows (any shape whose trailing size is one patch), as uint8."""
        data = np.ascontiguousarray(rows, dtype=np.uint8)
        count = data.size // self.row_bytes if self.row_bytes else 0
        if data.size != count * self.row_bytes or self.written + count > self.n_rows:
            raise ValueError(f"{self.path}: expected at most {self.n_rows} rows of "
                             f"{self.row_bytes} bytes, found {self.written} + array {rows.shape}")
        if count == 0:
            return
        view = data.reshape(-1).data
        self._digest.update(view)
        if self._fh is not None:
            self._fh.write(view)
        self.written += count

    def close(self) -> str:
        """Flush and close; return the file's sha256. Raises when rows are missing."""
        if self._fh is not None:
            self._fh.close()
        if self.written != self.n_rows:
            raise ValueError(f"{self.path}: expected {self.n_rows} rows, found {self.written}")
        return self._digest.hexdigest()

    def abort(self) -> None:
        """Close and delete the partial file."""
        if self._fh is not None:
            self._fh.close()
        self._digest.hexdigest()  # stops the hashing thread
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def npy_data_offset(path: Path | str) -> tuple[int, tuple[int, ...], np.dtype]:
    """Return (byte offset of the data, shape, dtype) of a C-ordered ``.npy`` file."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(fh)
        if fortran:
            raise InputFileError(path, "expected a C-ordered .npy, found Fortran order")
        return fh.tell(), tuple(shape), np.dtype(dtype)


def link_external_patches(h5ad_path: Path | str, npy_name: str, npy_path: Path | str) -> None:
    """Add ``obsm['patches_scale_1.0']`` to an ``.h5ad`` as an external view of a patches .npy.

    ``npy_name`` is the file name HDF5 will look for (relative to ``$HDF5_EXTFILE_PREFIX``,
    see ``EXTFILE_ENV``); ``npy_path`` is that file now, to read its header. The dataset is
    (n, H*W*3) uint8, as SpaRED stores patches; no pixel is copied.
    """

    offset, shape, dtype = npy_data_offset(npy_path)
    n = int(shape[0])
    row = int(np.prod(shape[1:]))
    with h5py.File(h5ad_path, "a") as fh:
        obsm = fh.require_group("obsm")
        if PATCHES_KEY in obsm:
            del obsm[PATCHES_KEY]
        ds = obsm.create_dataset(PATCHES_KEY, shape=(n, row), dtype=dtype,
                                 external=[(npy_name, offset, n * row * dtype.itemsize)])
        for key, value in _ARRAY_ATTRS.items():
            ds.attrs[key] = value


def write_h5ad_with_patches(adata: ad.AnnData, path: Path | str, n_rows: int, row_bytes: int,
                            chunks: Iterator[np.ndarray]) -> None:
    """Write ``adata`` (without patches) to ``path``, then append its patches from ``chunks``.

    The patches land in ``obsm['patches_scale_1.0']`` as SpaRED stores them: (n, H*W*3) uint8,
    readable by anndata. Not atomic by itself: write to a temporary path and rename.
    """

    if PATCHES_KEY in adata.obsm:
        raise ValueError(f"expected an AnnData without obsm['{PATCHES_KEY}'], found it present")
    adata.write_h5ad(path)
    with h5py.File(path, "a") as fh:
        ds = fh["obsm"].create_dataset(PATCHES_KEY, shape=(n_rows, row_bytes), dtype=np.uint8)
        for key, value in _ARRAY_ATTRS.items():
            ds.attrs[key] = value
        at = 0
        for chunk in chunks:
            block = np.ascontiguousarray(chunk, dtype=np.uint8).reshape(-1, row_bytes)
            ds[at:at + len(block)] = block
            at += len(block)
        if at != n_rows:
            raise ValueError(f"{path}: expected {n_rows} patch rows, found {at}")


def check_processed_file(path: Path | str, *, expected_genes: int | None = None,
                         require_completed: bool = False,
                         split_table: tuple[str, SplitTable] | None = None) -> None:
    """Validate a processed ``.h5ad`` against the schema without loading its patches.

    ``split_table`` (dataset name, its table) also requires the file's slides and splits to be
    SpaRED's (``split_table_problems``). Raises ``InputFileError`` (unreadable) or
    ``SchemaError`` (every problem listed).
    """
    with open_processed(path) as (adata, patches):
        problems = validate_dataset(adata, expected_genes=expected_genes,
                                    require_completed=require_completed, patches=patches)
        if split_table is not None and not problems:
            name, table = split_table
            problems = split_table_problems(adata.obs["split"].to_numpy(),
                                            adata.obs["slide_id"].to_numpy(), table, name)
        if problems:
            raise SchemaError(str(path), problems)


class PatchRows:
    """Patches kept on disk, read a block of rows at a time: parts of .npy files or .h5ad.

    ``parts`` are ``(path, key, n_rows)`` in row order: ``key`` names the HDF5 dataset of an
    ``.h5ad`` (e.g. ``obsm/patches_scale_1.0``), ``None`` a C-ordered uint8 ``.npy``. The
    .npy files are read with plain reads, not memory maps, so resident memory stays at a block.
    Indexing (``rows[i]``, ``rows[array]``) reads just those rows (small selections).
    """

    def __init__(self, parts: list[tuple[Path, str | None, int]], row_bytes: int) -> None:
        self.parts = [(Path(p), k, int(n)) for p, k, n in parts]
        self.row_bytes = int(row_bytes)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, bytes per row), as the flattened patches of SpaRED's ``obsm``."""
        return (sum(n for _, _, n in self.parts), self.row_bytes)

    dtype = np.dtype(np.uint8)
    ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def iter_blocks(self, budget_bytes: int = PATCH_CHUNK_BYTES
                    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first row, block) over every row in order, a budget's worth at a time."""
        first = 0
        for path, key, n in self.parts:
            if key is None:
                offset = npy_data_offset(path)[0]
                with open(path, "rb") as fh:
                    for block in iter_row_chunks(n, self.row_bytes, budget_bytes):
                        fh.seek(offset + block.start * self.row_bytes)
                        count = (block.stop - block.start) * self.row_bytes
                        data = np.frombuffer(fh.read(count), dtype=np.uint8)
                        yield first + block.start, data.reshape(-1, self.row_bytes)
            else:
                with h5py.File(path, "r") as fh:
                    ds = fh[key]
                    for block in iter_row_chunks(n, self.row_bytes, budget_bytes):
                        yield first + block.start, np.asarray(ds[block]).reshape(
                            -1, self.row_bytes)
            first += n

    def iter_selected(self, rows: np.ndarray,
                      budget_bytes: int = PATCH_CHUNK_BYTES) -> Iterator[np.ndarray]:
        """Yield the flattened patches of ``rows`` (ascending indices or a mask), in order."""
        rows = np.asarray(rows)
        if rows.dtype != np.bool_:
            if np.any(np.diff(rows) <= 0):
                raise ValueError("expected ascending, distinct row indices")
            mask = np.zeros(len(self), dtype=bool)
            mask[rows] = True
            rows = mask
        for first, block in self.iter_blocks(budget_bytes):
            keep = rows[first:first + len(block)]
            if keep.any():
                yield block[keep]

    def __getitem__(self, index: int | slice | list[int] | np.ndarray) -> np.ndarray:
        wanted = np.arange(len(self))[index]
        order = np.atleast_1d(wanted)
        unique = np.unique(order)
        gathered = np.concatenate(list(self.iter_selected(unique)) or
                                  [np.empty((0, self.row_bytes), np.uint8)])
        out = gathered[np.searchsorted(unique, order)]
        return out[0] if np.ndim(wanted) == 0 else out
