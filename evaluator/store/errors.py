"""Errors of the store: unusable database URLs, unreachable databases, schema not migrated."""

from __future__ import annotations

from evaluator.core.errors import BenchError


class StoreError(BenchError):
    """Base of the store's errors."""


class DatabaseUrlError(StoreError):
    """A ``DATABASE_URL`` the store cannot use."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = redact_url(url)
        super().__init__(f"DATABASE_URL {self.url}: {problem}")


class DatabaseUnavailable(StoreError):
    """The database did not answer (after the retries the caller allowed)."""

    def __init__(self, url: str, detail: str, waited_s: float) -> None:
        self.url = redact_url(url)
        self.detail = detail
        self.waited_s = waited_s
        super().__init__(
            f"expected the database {self.url} to answer, found it unreachable for "
            f"{waited_s:.0f} s ({detail})"
        )


class SchemaOutdated(StoreError):
    """The database's schema revision is not the one this code expects."""

    def __init__(self, url: str, expected: str, found: str | None) -> None:
        self.url = redact_url(url)
        super().__init__(
            f"database {self.url}: expected schema revision {expected}, found "
            f"{found or 'an empty database'}; run `spared-bench db upgrade`"
        )


class NotFound(StoreError):
    """A row asked for by id or name does not exist."""

    def __init__(self, kind: str, ref: object, hint: str = "") -> None:
        self.kind = kind
        self.ref = ref
        super().__init__(f"{kind} {ref!r} not found{': ' + hint if hint else ''}")


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
