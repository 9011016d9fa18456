"""Migrations on SQLite and Postgres: up, down, idempotent, concurrent, matching the models."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from evaluator.store import (
    DatabaseUrlError,
    SchemaOutdated,
    check_schema,
    current_revision,
    downgrade,
    get_engine,
    head_revision,
    normalize_url,
    open_store,
    redact_url,
    upgrade,
)

EXPECTED_TABLES = {"teams", "tokens", "releases", "submissions", "jobs", "job_attempts",
                   "worker_tokens", "workers",
                   "results", "alembic_version"}


def test_upgrade_creates_the_models_schema(db_url: str) -> None:
    engine = get_engine(db_url)
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == [], f"migrations and models differ: {diff}"


def test_upgrade_is_idempotent_and_downgrade_empties(db_url: str) -> None:
    engine = get_engine(db_url)
    upgrade(engine)
    assert upgrade(engine) == head_revision()
    assert downgrade(engine, "base") is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert upgrade(engine) == head_revision()


def test_concurrent_upgrades_all_succeed(db_url: str) -> None:
    engine = get_engine(db_url)
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade(engine)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert current_revision(engine) == head_revision()


def test_check_schema_names_the_fix(db_url: str) -> None:
    with pytest.raises(SchemaOutdated, match="spared-bench db upgrade"):
        open_store(db_url, upgrade_schema=False)
    engine = open_store(db_url)
    check_schema(engine)


def test_normalize_url() -> None:
    assert normalize_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("postgresql://u:p@h:5/db").startswith("postgresql+psycopg://")
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    with pytest.raises(DatabaseUrlError, match="expected a sqlite or postgresql URL"):
        normalize_url("mysql://u:secret@h/db")
    with pytest.raises(DatabaseUrlError, match="unparsable"):
        normalize_url("not a url")


def test_redact_url_hides_passwords() -> None:
    assert redact_url("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    with pytest.raises(DatabaseUrlError) as info:
        normalize_url("mysql://u:secret@h/db")
    assert "secret" not in str(info.value)
