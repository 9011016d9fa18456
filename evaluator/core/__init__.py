"""Lowest layer: errors, settings, atomic file I/O, hashing and the Visium grid geometry."""

from evaluator.core.errors import (
    BenchError,
    DatasetNotFound,
    InputFileError,
    ReleaseIntegrityError,
    ReleaseNotFound,
    SchemaError,
    SchemaProblem,
)
from evaluator.core.fsio import atomic_path, atomic_write_bytes, atomic_write_json, sha256_file
from evaluator.core.settings import Settings
from evaluator.core.text import EscapingFormatter, escape_controls
from evaluator.core.visium import hex_neighbors, visium_grid_to_pixels

__all__ = [
    "BenchError",
    "DatasetNotFound",
    "EscapingFormatter",
    "InputFileError",
    "ReleaseIntegrityError",
    "ReleaseNotFound",
    "SchemaError",
    "SchemaProblem",
    "Settings",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "escape_controls",
    "hex_neighbors",
    "sha256_file",
    "visium_grid_to_pixels",
]
