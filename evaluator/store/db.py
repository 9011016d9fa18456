"""Engines, sessions, migrations and retries over the results database.

SQLite (a file, the embedded default) and Postgres (``postgresql://...``, the scaled stack) run
the same code. SQLite connections use WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE``
transactions: several worker processes write to one file, and a deferred transaction that later
wants to write would fail with "database is locked" instead of waiting its turn.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlmodel import Session

from evaluator.store.errors import (
    DatabaseUnavailable,
    DatabaseUrlError,
    SchemaOutdated,
    redact_url,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# A Postgres advisory lock key ("spared" in ASCII) serializing concurrent migrations.
_PG_MIGRATION_LOCK = 0x737061726564

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """Return the SQLAlchemy URL for ``url``: Postgres goes through psycopg 3.

    Accepts ``sqlite:///PATH``, ``postgresql://``, ``postgres://`` and explicit drivers.
    Raises ``DatabaseUrlError`` for anything else.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUrlError(url, "expected sqlite:///PATH or postgresql://USER:PW@HOST/DB, "
                               "found an unparsable URL") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise DatabaseUrlError(url, f"expected a sqlite or postgresql URL, found {backend!r}")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: Engine) -> bool:
    """True for an SQLite engine."""
    return engine.dialect.name == "sqlite"


def create_db_engine(url: str) -> Engine:
    """Create an engine for ``url`` (see ``normalize_url``); SQLite folders are created.

    Prefer ``get_engine``, which shares one engine (and its pool) per URL in a process.
    """
    normalized = normalize_url(url)
    parsed = make_url(normalized)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            normalized,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(normalized, pool_pre_ping=True, pool_size=5, max_overflow=5,
                         connect_args={"connect_timeout": 5})


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, open transactions (see module doc).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def get_engine(url: str) -> Engine:
    """Return this process's shared engine for ``url`` (created on first use)."""
    key = normalize_url(url)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_db_engine(key)
        return engine


def dispose_engines() -> None:
    """Close every shared engine's connections (tests; a forked process before using the db)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """Yield a session in one transaction: committed on success, rolled back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _transient(error: BaseException, engine: Engine) -> bool:
    """True for errors that waiting can cure: a lost connection, a server down, a locked file."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, OperationalError | InterfaceError):
        return False
    if is_sqlite(engine):
        message = str(error.orig).lower()
        return "locked" in message or "busy" in message or "unable to open" in message
    return True


def with_retry(engine: Engine, work: Callable[[Session], T], *, wait_s: float = 30.0,
               what: str = "database work") -> T:
    """Run ``work(session)`` in one transaction, retrying while the database is briefly away.

    A lost connection, a server that refuses connections or a locked SQLite file is retried with
    backoff (0.2 s doubling to 2 s) for up to ``wait_s``; then ``DatabaseUnavailable``. Any other
    error propagates at once. ``work`` must be safe to repeat: its transaction was rolled back.
    """
    deadline = time.monotonic() + wait_s
    delay_s = 0.2
    start = time.monotonic()
    while True:
        try:
            with session_scope(engine) as session:
                return work(session)
        except (DBAPIError, InterfaceError) as error:
            if not _transient(error, engine):
                raise
            if time.monotonic() + delay_s > deadline:
                raise DatabaseUnavailable(str(engine.url), _first_line(error),
                                          time.monotonic() - start) from error
            log.warning("%s: database unavailable (%s); retrying in %.1f s", what,
                        _first_line(error), delay_s)
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


# -- migrations -----------------------------------------------------------------------------------


def _alembic_config(connection: Connection) -> Any:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration revision this code knows."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise SchemaOutdated("<code>", "a migration head", "no migrations")
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialize migrations across processes: file lock (SQLite), advisory lock (Postgres)."""
    if is_sqlite(engine):
        database = engine.url.database or ""
        if not database or database == ":memory:":
            yield
            return
        lock_path = Path(database).expanduser().with_name(Path(database).name + ".migrate.lock")
        with open(lock_path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                               {"key": _PG_MIGRATION_LOCK})
            connection.commit()


@contextlib.contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction for Alembic.

    On SQLite, foreign keys are off meanwhile: batch migrations recreate a table (copy, drop,
    rename) that other tables reference, and dropping it would fail the references of rows that
    the copy keeps. SQLite ignores the pragma inside a transaction, so it is set on the driver's
    connection before BEGIN; ``PRAGMA foreign_key_check`` must find nothing before the commit.
    """
    sqlite = is_sqlite(engine)
    with engine.connect() as connection:
        driver = connection.connection.dbapi_connection
        if sqlite and driver is not None:
            driver.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise SchemaOutdated(str(engine.url), "a migration keeping every "
                                             "foreign key", f"{len(broken)} broken references, "
                                             f"e.g. {tuple(broken[0])}")
        finally:
            if sqlite and driver is not None:
                driver.execute("PRAGMA foreign_keys=ON")


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Migrate the schema up to ``revision`` (idempotent, safe from several processes at once).

    Returns the revision the database is at afterwards.
    """
    with _migration_lock(engine), _migrating(engine) as connection:
        command.upgrade(_alembic_config(connection), revision)
    found = current_revision(engine)
    return found or ""


def downgrade(engine: Engine, revision: str) -> str | None:
    """Migrate the schema down to ``revision`` (``base`` empties it); returns the new revision."""
    with _migration_lock(engine), _migrating(engine) as connection:
        command.downgrade(_alembic_config(connection), revision)
    return current_revision(engine)


def check_schema(engine: Engine) -> None:
    """Raise ``SchemaOutdated`` unless the database is at this code's head revision."""
    expected = head_revision()
    found = current_revision(engine)
    if found != expected:
        raise SchemaOutdated(str(engine.url), expected, found)


def open_store(url: str, *, upgrade_schema: bool = True, wait_s: float = 30.0) -> Engine:
    """Return the shared engine for ``url`` with its schema ready.

    ``upgrade_schema`` migrates to head (what the CLI, workers and the embedded default do);
    otherwise the revision is only checked (``SchemaOutdated``). Waits up to ``wait_s`` for a
    database that is starting (``DatabaseUnavailable`` after).
    """
    engine = get_engine(url)
    deadline = time.monotonic() + wait_s
    start = time.monotonic()
    while True:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            break
        except (OperationalError, InterfaceError) as error:
            if time.monotonic() > deadline:
                raise DatabaseUnavailable(redact_url(url), _first_line(error),
                                          time.monotonic() - start) from error
            time.sleep(0.5)
    if upgrade_schema:
        upgrade(engine)
    else:
        check_schema(engine)
    return engine
