"""Read a raw input of the pipeline, whichever kind it is: a raw ``.h5ad`` or Space Ranger slides.

``read_raw`` dispatches to ``raw`` (AnnData counts) or ``spaceranger`` (a sources file listing
Space Ranger folders); ``input_fingerprint`` hashes every file an input is read from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from evaluator.core.fsio import sha256_file
from evaluator.datasets.patches import PatchRows, open_processed
from evaluator.datasets.pipeline.errors import RawInputError
from evaluator.datasets.pipeline.raw import SOURCES_NAME, RawData, raw_from_anndata
from evaluator.datasets.pipeline.spaceranger import MATRIX_NAME, read_sources, source_files
from evaluator.datasets.schema import PATCHES_KEY


def _sources_file(path: Path) -> Path | None:
    if path.is_dir() and (path / SOURCES_NAME).is_file():
        return path / SOURCES_NAME
    if path.is_file() and path.suffix == ".json":
        return path
    return None


def read_raw(path: Path | str, *, progress: bool = False, work_dir: Path | None = None
             ) -> RawData:
    """Read a raw input: an ``.h5ad`` of counts, or a sources ``.json`` of Space Ranger slides.

    The patches stay on disk (``PatchRows``): those of an ``.h5ad`` in the file itself, those
    cut from Space Ranger images in ``.npy`` files under ``work_dir`` (in memory when it is
    None: small data only). Raises ``RawInputError`` / ``InputFileError`` naming the file and
    what is missing.
    """
    path = Path(path)
    if not path.exists():
        raise RawInputError(path, "expected a raw .h5ad or a sources .json, found nothing at "
                            "this path")
    sources = _sources_file(path)
    if sources is not None:
        return read_sources(sources, progress=progress, work_dir=work_dir)
    if path.is_dir():
        hint = (" (a Space Ranger folder is one slide: list the dataset's slides, with slide_id, "
                f"patient and split, in a {SOURCES_NAME})"
                if (path / MATRIX_NAME).is_file() else "")
        raise RawInputError(path, f"expected a raw .h5ad file or a folder with {SOURCES_NAME}, "
                            f"found a folder without one{hint}")
    if path.suffix != ".h5ad":
        raise RawInputError(path, "expected a .h5ad of raw counts or a sources .json, found "
                            f"suffix {path.suffix!r}")
    with open_processed(path) as (adata, patches):
        if patches is not None and (patches.dtype != np.uint8 or patches.ndim != 2):
            raise RawInputError(path, f"obsm['{PATCHES_KEY}']: expected flattened uint8 "
                                f"patches (spots x H*W*3), found {patches.dtype} of shape "
                                f"{patches.shape}")
        on_disk = (None if patches is None else
                   PatchRows([(path, patches.name, patches.shape[0])], patches.shape[1]))
        return raw_from_anndata(adata, str(path), on_disk)


def input_fingerprint(path: Path | str) -> str:
    """Return the sha256 over every file a raw input is read from (content, not dates)."""
    path = Path(path)
    sources = _sources_file(path)
    if sources is None:
        if not path.is_file():
            raise RawInputError(path, "expected a raw .h5ad or a sources .json, found nothing")
        return sha256_file(path)
    root = sources.parent.resolve()
    digest = hashlib.sha256()
    for file in source_files(sources):
        resolved = file.resolve()
        name = (resolved.relative_to(root).as_posix() if resolved.is_relative_to(root)
                else resolved.as_posix())
        digest.update(name.encode() + b"\0" + sha256_file(resolved).encode() + b"\n")
    return digest.hexdigest()
