"""Errors of the processing pipeline (raw counts to a processed SpaRED dataset)."""

from __future__ import annotations

from pathlib import Path

from evaluator.core.errors import BenchError


class PipelineError(BenchError):
    """The pipeline cannot go on: a step left too few spots or genes, or a state is broken."""


class PipelineConfigError(BenchError):
    """A pipeline configuration file is missing, unreadable or has invalid values."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class RawInputError(BenchError):
    """A raw input (AnnData of counts, Space Ranger folder, sources file) lacks something."""

    def __init__(self, source: Path | str, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{source}: {problem}")
