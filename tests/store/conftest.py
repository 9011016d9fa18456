"""Store fixtures: every store test runs on SQLite and on Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.dbsupport import postgres_schema_url, sqlite_url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, or a fresh schema on the test Postgres."""
    from evaluator.store import dispose_engines

    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        dispose_engines()
    else:
        with postgres_schema_url() as url:
            yield url


@pytest.fixture
def engine(db_url: str):
    """A migrated engine on ``db_url``."""
    from evaluator.store import open_store

    return open_store(db_url)
