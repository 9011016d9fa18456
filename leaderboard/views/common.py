"""What the blueprints share: the view a request asks for (release, track, filter), cached
responses, CSV, bearer tokens."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Response, request
from pydantic import BaseModel, ValidationError

from evaluator.core.text import csv_cell
from evaluator.orchestrator.auth import authenticate, authenticate_worker
from evaluator.orchestrator.errors import AuthError, WrongTokenKind
from evaluator.store import Team, session_scope
from leaderboard.data import ReleaseInfo, resolve_release
from leaderboard.db import db, state, version
from leaderboard.errors import BadParameter, Forbidden, Unauthorized
from leaderboard.filters import DatasetFilter, Track, parse_filter, parse_track


@dataclass(frozen=True)
class View:
    """What a request asks to see: a release, a track and a dataset filter."""

    release: ReleaseInfo
    track: Track
    filt: DatasetFilter

    @property
    def key(self) -> tuple[str, str, str]:
        """Cache key part."""
        return (self.release.release_id, self.track, self.filt.key)


def current_release() -> ReleaseInfo:
    """The release named by ``?release=`` (id, prefix or label), else the current one; 404."""
    ref = request.args.get("release") or None
    return state().cache.get_or_compute(("release", version(), ref),
                                        lambda: resolve_release(db(), ref))


def current_view() -> View:
    """Parse ``release``, ``track`` and the filter parameters (400/404 on bad values)."""
    track = parse_track(request.args.get("track"))
    filt = parse_filter(request.args)
    return View(current_release(), track, filt)


def public_url() -> str | None:
    """The app's public address from the settings (``SPARED_BENCH_PUBLIC_URL``), never from
    the request's ``Host`` header (which a client chooses, and a cache would keep)."""
    url = state().settings.public_url
    return url.rstrip("/") if url else None


def output_format() -> str:
    """``json`` (default) or ``csv`` from ``?format=``."""
    value = request.args.get("format") or "json"
    if value not in ("json", "csv"):
        raise BadParameter("format", "json or csv", value)
    return value


def cached_response(key: tuple[Hashable, ...], build: Callable[[], tuple[bytes, str]], *,
                    max_age_s: int = 30, filename: str | None = None) -> Response:
    """A response whose body is built once per (key, store version) and then served from the
    cache."""
    body, mimetype = state().cache.get_or_compute(("response", *key, version()), build)
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = f"public, max-age={max_age_s}"
    if filename:
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def model_json(model: BaseModel) -> bytes:
    """A response model as JSON bytes."""
    return model.model_dump_json().encode()


def csv_bytes(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> bytes:
    """Rows as CSV (header first); dicts and lists inside cells as their text; text that a
    spreadsheet would run as a formula is quoted (``csv_cell``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(row.get(k)) for k in columns})
    return buffer.getvalue().encode()


def bearer_token() -> str | None:
    """The token of ``Authorization: Bearer <token>``, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def team_for_token(token: str | None) -> Team:
    """The team a token belongs to; ``Unauthorized`` for a missing, unknown or revoked one."""
    if not token:
        raise Unauthorized("expected an API token in the header 'Authorization: Bearer "
                           "<token>', found none")
    try:
        with session_scope(state().engine) as session:
            return authenticate(session, token)
    except WrongTokenKind as error:
        raise Forbidden(str(error)) from error
    except AuthError as error:
        raise Unauthorized(str(error)) from error


def authenticated_worker() -> str:
    """The worker name of the request's bearer token: 401 without a valid worker token, 403
    for a team's token (worker endpoints take worker tokens only)."""
    token = bearer_token()
    if not token:
        raise Unauthorized("expected a worker token in the header 'Authorization: Bearer "
                           "<token>', found none")
    try:
        with session_scope(state().engine) as session:
            return authenticate_worker(session, token)
    except WrongTokenKind as error:
        raise Forbidden(str(error)) from error
    except AuthError as error:
        raise Unauthorized(str(error)) from error


def authenticated_team() -> Team:
    """The team of the request's bearer token (401 without a valid one)."""
    return team_for_token(bearer_token())


def admin_team(action: str) -> Team:
    """The request's team, which must be an admin team (401, then 403)."""
    team = authenticated_team()
    if not team.is_admin:
        raise Forbidden(f"{action}: expected an admin token, found one of team {team.name!r}")
    return team


def json_body(model: type[BaseModel]) -> Any:
    """The request's JSON body validated by ``model`` (an empty body takes the defaults)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        payload: Any = {}
    else:
        try:
            payload = request.get_json(silent=True)
        except RecursionError as error:
            raise BadParameter("body", "a JSON object nested a few levels deep",
                               "nesting too deep to read") from error
        if payload is None:
            raise BadParameter("body", "a JSON object", raw[:60].decode(errors="replace"))
    if not isinstance(payload, dict):
        raise BadParameter("body", "a JSON object", type(payload).__name__)
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        item = error.errors(include_url=False)[0]
        key = ".".join(str(p) for p in item["loc"]) or "(body)"
        raise BadParameter(f"body.{key}", str(item["msg"]).lower(),
                           item.get("input")) from error
