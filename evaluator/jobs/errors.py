"""Errors of the job pipeline: staging inputs, unusable outputs, unusable job settings."""

from __future__ import annotations

from pathlib import Path

from evaluator.core.errors import BenchError


class JobError(BenchError):
    """Base of the job pipeline's errors."""


class StagingError(JobError):
    """A job's input folder cannot be built or a cached one is not what it should be."""

    def __init__(self, path: Path | str, expected: str, found: str) -> None:
        self.path = Path(path)
        self.expected = expected
        self.found = found
        super().__init__(f"staged inputs {self.path}: expected {expected}, found {found}")


class OutputError(JobError):
    """A submission's output breaks the contract; the message is shown to the author.

    ``where`` is the path as the submission sees it (``/output/predictions.npy``), never the
    evaluator's host path.
    """

    def __init__(self, where: str, field: str, expected: str, found: str) -> None:
        self.where = where
        self.field = field
        self.expected = expected
        self.found = found
        super().__init__(f"{where}: {field}: expected {expected}, found {found}")
