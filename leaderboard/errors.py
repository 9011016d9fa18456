"""Errors of the web app, each with its HTTP status; rendered as ``{"error": ...}`` by the API."""

from __future__ import annotations

from evaluator.core.errors import BenchError


class WebError(BenchError):
    """An error answered with ``status`` (4xx) and its message."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.headers = headers or {}


class BadParameter(WebError):
    """A query parameter or body field that does not parse (400)."""

    def __init__(self, name: str, expected: str, found: object) -> None:
        super().__init__(f"parameter {name!r}: expected {expected}, found {found!r}")
        self.name = name


class Unauthorized(WebError):
    """No token, or an unknown or revoked one (401)."""

    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="spared-bench"'})


class Forbidden(WebError):
    """A valid token without the right (403)."""

    status = 403


class NotFoundError(WebError):
    """A release, entry or dataset that does not exist (404)."""

    status = 404


class PayloadTooLarge(WebError):
    """An upload over the size limit (413)."""

    status = 413


class RateLimited(WebError):
    """A client over its rate limit (429, with ``Retry-After``)."""

    status = 429

    def __init__(self, kind: str, retry_after_s: float) -> None:
        wait = max(1, int(retry_after_s + 0.999))
        super().__init__(f"rate limit ({kind} requests): expected fewer requests, found too many; "
                         f"retry after {wait} s", headers={"Retry-After": str(wait)})
