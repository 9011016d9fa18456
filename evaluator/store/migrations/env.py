"""Alembic environment of the results database: migrations run on the caller's connection.

``evaluator.store.db.upgrade`` passes its connection in ``config.attributes["connection"]``;
``alembic -x url=...`` (by hand) works too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from evaluator.store import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from evaluator.store.db import normalize_url

config = context.config
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    """Run the migrations on the given connection, or on one to ``-x url=...``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("expected -x url=DATABASE_URL, found none")
    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=conn.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
