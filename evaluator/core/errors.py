"""The error hierarchy: one ``BenchError`` base, subclasses carry their context.

Every message reads "expected X, found Y" where that applies, and names the file or key.
The CLI prints ``str(error)`` without a traceback for any ``BenchError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class BenchError(Exception):
    """Base of every error SpaRED Bench raises on purpose."""


class InputFileError(BenchError):
    """A file given by the user is missing, unreadable or of the wrong kind."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DatasetNotFound(BenchError):
    """A dataset name that is not in the registry; lists close matches."""

    def __init__(self, name: str, close_matches: list[str]) -> None:
        self.name = name
        self.close_matches = close_matches
        hint = f"; did you mean {', '.join(close_matches)}?" if close_matches else ""
        super().__init__(
            f"unknown dataset {name!r}: expected one of the 26 SpaRED dataset names or "
            f"abbreviations (see `spared-bench datasets`){hint}"
        )


@dataclass(frozen=True)
class SchemaProblem:
    """One way a dataset file breaks the schema: which key, what was expected, what was found."""

    key: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.key}: expected {self.expected}, found {self.found}"


class SchemaError(BenchError):
    """A dataset file breaks the schema; carries one ``SchemaProblem`` per problem."""

    def __init__(self, source: str, problems: list[SchemaProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source} does not follow the SpaRED dataset schema:\n{lines}")


class ReleaseNotFound(BenchError):
    """No release with that id (or prefix, or label) exists in the store."""

    def __init__(self, ref: str, available: list[str]) -> None:
        self.ref = ref
        self.available = available
        shown = ", ".join(available[:10]) or "none"
        super().__init__(f"release {ref!r} not found: expected one of {shown}")


class ReleaseIntegrityError(BenchError):
    """A release file is missing or its content does not match the manifest."""

    def __init__(self, path: Path | str, expected: str, found: str) -> None:
        self.path = Path(path)
        self.expected = expected
        self.found = found
        super().__init__(
            f"release file {self.path} failed its integrity check: expected {expected}, "
            f"found {found}; the release was modified after it was built and is refused"
        )
