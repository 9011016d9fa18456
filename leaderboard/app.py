"""The Flask app factory: store, cache, rate limits, error handling and the blueprints.

``create_app()`` opens (and migrates) the store named by the settings, then serves:
- ``pages``: leaderboard, entries, datasets, significance, submission guide (HTML);
- ``api``: JSON and CSV of everything shown, the OpenAPI document, submissions and admin
  actions (``/api/...``);
- ``plots``: the figures as SVG (``/plots/...``).
Every asset (CSS, JS, figures) is served by the app itself: it works offline.
Imports neither docker nor torch.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from evaluator.core.errors import (
    BenchError,
    DatasetNotFound,
    ReleaseIntegrityError,
    ReleaseNotFound,
)
from evaluator.core.settings import Settings
from evaluator.orchestrator.errors import (
    AuthError,
    LimitExceeded,
    OrchestratorError,
    QueueUnavailable,
    RegistryNotConfigured,
    SubmissionRejected,
)
from evaluator.scoring import compute_statistics
from evaluator.store import NotFound, StoreError, open_store
from evaluator.store.db import SQLITE_BUSY_TIMEOUT_MS, is_sqlite
from leaderboard.board import Board
from leaderboard.cache import ViewCache
from leaderboard.config import LeaderboardConfig
from leaderboard.db import AppState
from leaderboard.errors import RateLimited, WebError
from leaderboard.ratelimit import TokenBucketLimiter
from leaderboard.schemas import MAX_ID
from leaderboard.templating import register_filters
from leaderboard.views.api import api
from leaderboard.views.downloads import downloads
from leaderboard.views.pages import pages
from leaderboard.views.plots import plots
from leaderboard.views.workers import workers

log = logging.getLogger(__name__)

JSON_BODY_MAX_BYTES = 64 * 1024
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


class IdConverter(IntegerConverter):
    """``<int:...>`` in routes: a row id, 0 to 2**63 - 1 (what every store can hold)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def wants_json() -> bool:
    """True for API and plot requests (errors answered as JSON rather than a page)."""
    return request.path.startswith(("/api/", "/plots/", "/healthz"))


def client_key(config: LeaderboardConfig) -> str:
    """The client a rate limit counts: the connection's address, or, on a connection from a
    trusted proxy (``trusted_proxies``), the last ``X-Forwarded-For`` hop that is not one.

    Hops are read right to left: each trusted proxy appends the address it saw, so the first
    untrusted one from the right is the client; anything left of it is the client's to forge.
    """
    remote = request.remote_addr or "unknown"
    networks = config.proxy_networks()
    if not networks or not _within(remote, networks):
        return remote
    hops = [h.strip() for line in request.headers.getlist("X-Forwarded-For")
            for h in line.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _within(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # not an address: no proxy of ours wrote it
    return hops[0] if hops else remote


def _within(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _status_of(error: Exception) -> int:
    if isinstance(error, WebError):
        return error.status
    if isinstance(error, NotFound | DatasetNotFound | ReleaseNotFound | RegistryNotConfigured):
        return 404
    if isinstance(error, AuthError):
        return 403
    if isinstance(error, LimitExceeded):
        return 429
    if isinstance(error, SubmissionRejected):
        return 422
    if isinstance(error, ReleaseIntegrityError):
        return 409
    if isinstance(error, QueueUnavailable):
        return 503
    if isinstance(error, StoreError):
        return 503
    if isinstance(error, OrchestratorError):
        return 409
    if isinstance(error, BenchError):
        return 400
    return 500


def _error_response(message: str, status: int, headers: dict[str, str] | None = None
                    ) -> Response:
    if wants_json():
        response = jsonify({"error": message, "status": status})
    else:
        response = Response(render_template("errors/error.html", message=message,
                                            status=status), mimetype="text/html")
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _register_errors(app: Flask) -> None:
    @app.errorhandler(BenchError)
    def bench_error(error: BenchError) -> Response:
        status = _status_of(error)
        headers = error.headers if isinstance(error, WebError) else None
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.path, error)
        return _error_response(str(error), status, headers)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        allowed = sorted(getattr(error, "valid_methods", None) or [])
        if status == 404:
            message = f"{request.path}: expected a known page or API path, found none"
        elif status == 405:
            message = (f"{request.method} {request.path}: expected one of "
                       f"{', '.join(allowed)}, found {request.method}")
        elif status == 413:
            limit = request.max_content_length
            message = ("request body: expected at most "
                       f"{f'{limit / 2**20:.4g} MB' if limit else 'the upload limit'}, found more")
        else:
            message = error.description or error.name
        response = _error_response(message, status)
        if status == 405 and allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.path)
        return _error_response(f"internal error ({type(error).__name__}); the maintainers "
                               "can find it in the server log", 500)


def _register_hooks(app: Flask, app_state: AppState) -> None:
    @app.before_request
    def limit_rate() -> None:
        if request.endpoint in (None, "static", "pages.health"):
            return
        writing = request.method not in ("GET", "HEAD", "OPTIONS")
        limiter = app_state.write_limiter if writing else app_state.read_limiter
        wait_s = limiter.take(("w:" if writing else "r:") + client_key(app_state.config))
        if wait_s > 0:
            raise RateLimited("write" if writing else "read", wait_s)

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.teardown_appcontext
    def close_session(_error: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def read_engine(engine: Engine) -> Engine:
    """The engine the pages read through.

    The store's SQLite engine opens every transaction with ``BEGIN IMMEDIATE`` (its writers
    must queue, not fail), which would make each page view hold the write lock for a whole
    request. Pages only read, so on SQLite they get an engine of their own in autocommit mode
    (each SELECT its own snapshot; WAL lets readers and writers proceed together) and
    ``query_only``. Postgres reads take no locks: the store's engine is used as it is.
    """
    if not is_sqlite(engine):
        return engine
    reader = create_engine(engine.url, connect_args={"check_same_thread": False,
                                                     "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(reader, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA query_only=1")
        cursor.close()

    return reader


def warm_up() -> None:
    """Import the statistics' libraries now (pandas, scipy, scikit-posthocs take ~1 s), so that
    the first uncached view does not pay for them."""
    compute_statistics([{"entry": e, "dataset": d, "mse": 1.0 + i + 0.5 * j}
                        for i, e in enumerate("abc") for j, d in enumerate("xyz")])


def create_app(settings: Settings | None = None, *, database_url: str | None = None,
               config: LeaderboardConfig | None = None, warm: bool = False) -> Flask:
    """Build the web app on the store named by ``database_url`` or the settings.

    The store's schema is migrated to head (as the CLI and workers do). ``warm`` imports the
    statistics' libraries in a background thread. Raises ``BenchError`` for unusable settings
    and ``DatabaseUnavailable`` when the database does not answer.
    """
    settings = settings or Settings.from_env()
    config = config or LeaderboardConfig.from_env()
    engine = open_store(database_url or settings.resolved_database_url)
    cache = ViewCache(config.cache_entries)
    app_state = AppState(
        settings=settings, config=config, engine=engine, reader=read_engine(engine), cache=cache,
        board=Board(cache),
        read_limiter=TokenBucketLimiter(config.read_rate_per_s, config.read_burst),
        write_limiter=TokenBucketLimiter(config.write_rate_per_min / 60.0, config.write_burst))
    app = Flask(__name__)
    # Before any blueprint: every <int:...> of a route is a 64-bit id (larger: 404, not 500).
    app.url_map.converters["int"] = IdConverter
    app.config.update(MAX_CONTENT_LENGTH=JSON_BODY_MAX_BYTES, JSON_SORT_KEYS=False,
                      SEND_FILE_MAX_AGE_DEFAULT=3600, TEMPLATES_AUTO_RELOAD=False)
    if isinstance(app.json, DefaultJSONProvider):  # Flask's own: responses keep model order
        app.json.sort_keys = False
    app.extensions["spared_bench"] = app_state

    register_filters(app)
    app.register_blueprint(pages)
    app.register_blueprint(api)
    app.register_blueprint(downloads)
    app.register_blueprint(plots)
    app.register_blueprint(workers)
    _register_hooks(app, app_state)
    _register_errors(app)
    if warm:
        threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    return app
