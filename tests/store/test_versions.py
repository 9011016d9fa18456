"""Migration 0004 (entry versions) on SQLite and Postgres, with rows in it, and
``ranked_versions``: which version of each entry a release shows."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlmodel import col, select

from evaluator.store import (
    Submission,
    downgrade,
    get_engine,
    open_store,
    ranked_versions,
    session_scope,
    upgrade,
    utcnow,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _submission(connection: object, sid: int, name: str, digest: str, **extra: object) -> None:
    columns = {"id": sid, "team_id": 1, "name": name, "description": "", "image_ref": "m:1",
               "image_digest": digest, "image_size_bytes": 0, "platform": "linux/amd64",
               "is_baseline": False, "hidden": False, "created_at": NOW, **extra}
    connection.execute(text(  # type: ignore[attr-defined]
        f"INSERT INTO submissions ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + k for k in columns)})"), columns)


def test_0004_numbers_existing_entries_and_downgrade_keeps_every_row(db_url: str) -> None:
    engine = get_engine(db_url)
    assert upgrade(engine, "0003") == "0003"
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO teams (id, name, is_admin, created_at) VALUES (1, 't', false, :now)"),
            {"now": NOW})
        _submission(connection, 1, "m", "sha256:a")
    assert upgrade(engine, "0004") == "0004"
    with engine.begin() as connection:
        assert connection.execute(text(
            "SELECT version, withdrawn_at, paper_url FROM submissions")).one() == (1, None, None)
        _submission(connection, 2, "m", "sha256:b", version=2, paper_url="https://x.org/p")
    assert downgrade(engine, "0003") == "0003"
    with engine.connect() as connection:
        names = connection.execute(text("SELECT id, name FROM submissions ORDER BY id")).all()
    assert [tuple(row) for row in names] == [(1, "m~v1"), (2, "m")]
    assert upgrade(engine, "0004") == "0004"


def test_ranked_versions_prefers_the_newest_version_with_results(db_url: str) -> None:
    from tests.leaderboard.seed import RELEASE, EntrySpec, seed_store

    engine = open_store(db_url)
    seeded = seed_store(engine, (EntrySpec("team-a", "m", 0.5),), old_release_id=None)
    first = seeded.ids["team-a/m"]
    with session_scope(engine) as session:
        v1 = session.get(Submission, first)
        assert v1 is not None
        for version in (2, 3):
            session.add(Submission(team_id=v1.team_id, name="m", image_ref="m",
                                   image_digest=f"sha256:{version}", version=version))
    with session_scope(engine) as session:
        ids = list(session.exec(select(Submission.id).order_by(col(Submission.id))))
        # Versions 2 and 3 have no results on the release: version 1 stays shown.
        assert ranked_versions(session, RELEASE) == {(v1.team_id, "m"): first}
        # On a release nobody has results on, the newest version is the one shown.
        assert ranked_versions(session, "e" * 64) == {(v1.team_id, "m"): ids[-1]}
        for row in session.exec(select(Submission).where(col(Submission.id) != ids[1])):
            row.withdrawn_at = utcnow()
            session.add(row)
    with session_scope(engine) as session:
        assert ranked_versions(session, RELEASE) == {(v1.team_id, "m"): ids[1]}
