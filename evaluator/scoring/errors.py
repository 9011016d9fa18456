"""Errors of the scoring layer: bad predictions, unusable truth, unusable results tables."""

from __future__ import annotations

from pathlib import Path

from evaluator.core.errors import BenchError


class PredictionError(BenchError):
    """A predictions file a model wrote cannot be scored; says what was expected and found."""

    def __init__(self, path: Path | str, field: str, expected: str, found: str) -> None:
        self.path = Path(path)
        self.field = field
        self.expected = expected
        self.found = found
        super().__init__(f"predictions {self.path}: {field}: expected {expected}, found {found}")


class TruthError(BenchError):
    """A truth file (processed dataset, release truth, or arrays) cannot be used for scoring."""

    def __init__(self, source: Path | str, expected: str, found: str) -> None:
        self.source = str(source)
        self.expected = expected
        self.found = found
        super().__init__(f"truth {self.source}: expected {expected}, found {found}")


class MetricInputError(BenchError):
    """Arrays given to ``compute_metrics`` do not fit together (shape, dtype, nothing measured)."""

    def __init__(self, what: str, expected: str, found: str) -> None:
        self.what = what
        self.expected = expected
        self.found = found
        super().__init__(f"{what}: expected {expected}, found {found}")


class ResultsTableError(BenchError):
    """A results table for statistics is missing columns or holds unusable values."""

    def __init__(self, source: str, expected: str, found: str) -> None:
        self.source = source
        self.expected = expected
        self.found = found
        super().__init__(f"results table {source}: expected {expected}, found {found}")
