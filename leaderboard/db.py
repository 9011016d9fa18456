"""The request-scoped pieces every blueprint shares: the app's state, a read session, the
store's version (the Flask tutorial's ``db.py``: views import these, never the app factory).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, g
from sqlalchemy.engine import Engine
from sqlmodel import Session

from evaluator.core.settings import Settings
from evaluator.orchestrator import Bench, JobQueue
from leaderboard.board import Board
from leaderboard.cache import ViewCache
from leaderboard.config import LeaderboardConfig
from leaderboard.data import store_version
from leaderboard.ratelimit import TokenBucketLimiter

__all__ = ["AppState", "db", "state", "version"]


@dataclass
class AppState:
    """What the blueprints share: settings, the store's engine, the cache and the limiters."""

    settings: Settings
    config: LeaderboardConfig
    engine: Engine
    reader: Engine
    cache: ViewCache
    board: Board
    read_limiter: TokenBucketLimiter
    write_limiter: TokenBucketLimiter
    _bench: Any = None
    _bench_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def max_upload_bytes(self) -> int:
        """The largest submission upload (the web limit, at most the intake's own)."""
        mb = self.config.max_upload_mb or self.settings.max_image_mb
        return int(min(mb, self.settings.max_image_mb) * 2**20)

    def bench(self) -> Any:
        """The orchestrator's ``Bench`` on this app's engine (queue opened on first use)."""
        with self._bench_lock:
            if self._bench is None:
                self._bench = Bench(self.settings, self.engine,
                                    JobQueue(self.settings.resolved_queue_url))
            return self._bench


def state() -> AppState:
    """This app's shared state (inside a request)."""
    return current_app.extensions["spared_bench"]


def db() -> Session:
    """The request's read session (opened on first use, closed at teardown; see
    ``read_engine``)."""
    if "db_session" not in g:
        g.db_session = Session(state().reader, expire_on_commit=False)
    return g.db_session


def version() -> tuple[Any, ...]:
    """The store's version, read once per request (the cache keys include it)."""
    if "store_version" not in g:
        g.store_version = store_version(db())
    return g.store_version
