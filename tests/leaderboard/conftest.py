"""Fixtures of the leaderboard tests: a seeded store (SQLite) and the app on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.leaderboard.seed import Seeded, seed_store


@dataclass
class LeaderboardEnv:
    """A seeded store, its settings and an app on it."""

    home: Path
    url: str
    seeded: Seeded
    app: Any

    def client(self) -> Any:
        return self.app.test_client()

    def token(self, team: str) -> dict[str, str]:
        """The Authorization header of a team's token."""
        return {"Authorization": f"Bearer {self.seeded.tokens[team]}"}


def make_env(home: Path, *, log_text: str | None = None, url: str | None = None,
             registry_url: str | None = None, **config: Any) -> LeaderboardEnv:
    """Seed a fresh store (SQLite under ``home``, or the empty database at ``url``) and build
    the app (rate limits off unless given)."""
    from evaluator.core.settings import Settings
    from evaluator.store import open_store
    from leaderboard import LeaderboardConfig, create_app

    home.mkdir(parents=True, exist_ok=True)
    url = url or f"sqlite:///{home / f'bench-{uuid.uuid4().hex[:8]}.db'}"
    seeded = seed_store(open_store(url), **({"log_text": log_text} if log_text else {}))
    settings = Settings(home=home, database_url=url,
                        queue_url=f"sqlite:///{home / 'queue.db'}", registry_url=registry_url)
    options = {"read_rate_per_s": 0.0, "write_rate_per_min": 0.0, **config}
    app = create_app(settings, database_url=url, config=LeaderboardConfig(**options))
    app.testing = True
    return LeaderboardEnv(home, url, seeded, app)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeaderboardEnv]:
    """A seeded app shared by a module's read-only tests."""
    from evaluator.store import dispose_engines

    yield make_env(tmp_path_factory.mktemp("leaderboard"))
    dispose_engines()


@pytest.fixture
def fresh_env(tmp_path: Path) -> LeaderboardEnv:
    """A seeded app of its own, for tests that change the store."""
    return make_env(tmp_path / "home")


@pytest.fixture
def client(env: LeaderboardEnv) -> Any:
    return env.client()
