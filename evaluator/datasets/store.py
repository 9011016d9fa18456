"""The processed-dataset store: atomic ``.h5ad`` writes and imports of SpaRED-processed files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from evaluator.core.fsio import atomic_path
from evaluator.datasets.patches import check_processed_file
from evaluator.datasets.registry import DatasetInfo, get_dataset

if TYPE_CHECKING:
    import anndata as ad


def write_h5ad(adata: ad.AnnData, path: Path | str) -> Path:
    """Write ``adata`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
    return path


def processed_path(processed_dir: Path, info: DatasetInfo) -> Path:
    """Return where the processed file of a dataset lives in the store."""
    return processed_dir / f"{info.name}.h5ad"


def import_processed(source: Path | str, dataset: str, processed_dir: Path, *,
                     other_splits: bool = False) -> Path:
    """Validate a SpaRED-processed ``.h5ad`` and copy it, unchanged, into the store.

    The file's slides and their splits must be those of SpaRED's split table for the dataset
    (``registry.SplitTable``); ``other_splits=True`` waives that, for data that are not
    SpaRED's. Raises ``DatasetNotFound`` for an unknown dataset, ``InputFileError`` for an
    unreadable file and ``SchemaError`` (every problem listed) for a file that breaks the schema
    or the split table. The copy is byte-for-byte and atomic; an existing file of that dataset
    is replaced only on success.
    """
    source = Path(source)
    info = get_dataset(dataset)
    check_processed_file(source, expected_genes=info.genes,
                         split_table=None if other_splits else (info.name, info.splits))
    target = processed_path(processed_dir, info)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target
