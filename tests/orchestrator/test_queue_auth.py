"""The queue on SQLite and Redis, and teams and tokens."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from evaluator.orchestrator import (
    AuthError,
    JobQueue,
    OrchestratorError,
    QueueUnavailable,
    QueueUrlError,
    authenticate,
    create_team,
    issue_token,
    require_admin,
    revoke_token,
)
from evaluator.orchestrator.queue import split_queue_url
from evaluator.store import ApiToken, open_store, session_scope
from tests.store.dbsupport import redis_server_url, sqlite_url


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'q' / 'queue.db'}"
    return f"{redis_server_url()}?queue=t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def opened() -> Iterator[Callable[[str], JobQueue]]:
    """Open queues that are closed after the test (no connection left to the collector)."""
    queues: list[JobQueue] = []

    def open_queue(url: str) -> JobQueue:
        queues.append(JobQueue(url))
        return queues[-1]

    yield open_queue
    for queue in queues:
        queue.close()


def test_enqueue_counts_and_flush(queue_url: str, opened: Callable[[str], JobQueue]) -> None:
    queue = opened(queue_url)
    assert queue.kind == ("sqlite" if queue_url.startswith("sqlite") else "redis")
    assert queue.enqueue([1, 2, 3]) == 3
    assert queue.enqueue([4], delay_s=60) == 1
    # A delayed message waits among the others until a consumer moves it to the schedule.
    assert (queue.pending(), queue.scheduled()) == (4, 0)
    task = queue.huey.dequeue()
    assert task.args == (1,)
    assert queue.pending() == 3
    # A second handle on the same URL sees the same queue; another name does not.
    assert opened(queue_url).pending() == 3
    queue.enqueue([5])
    other = queue_url.split("?")[0] + "?queue=other-" + uuid.uuid4().hex[:6] \
        if "redis" in queue_url else queue_url.replace("queue.db", "other.db")
    assert opened(other).pending() == 0
    queue.flush()
    assert queue.pending() == 0


def test_dequeued_ids_reach_the_handler_in_order(queue_url: str,
                                                 opened: Callable[[str], JobQueue]) -> None:
    queue = opened(queue_url)
    seen: list[int] = []
    queue.set_handler(seen.append)
    queue.enqueue([7, 8])
    for _ in range(2):
        task = queue.huey.dequeue()
        queue.huey.execute(task)
    assert seen == [7, 8]


def test_queue_urls() -> None:
    assert split_queue_url("redis://h:1/0?queue=a") == ("redis://h:1/0", "a")
    assert split_queue_url("sqlite:////tmp/q.db") == ("sqlite:////tmp/q.db", "spared-bench")
    with pytest.raises(QueueUrlError, match="expected sqlite:///PATH or redis://"):
        JobQueue("amqp://h/")


def test_unreachable_redis_is_a_clear_error(opened: Callable[[str], JobQueue]) -> None:
    queue = opened("redis://127.0.0.1:1/0")
    with pytest.raises(QueueUnavailable, match="stay queued in the database"):
        queue.enqueue([1])


def test_tokens_are_hashed_and_checked(tmp_path: Path) -> None:
    engine = open_store(sqlite_url(tmp_path))
    with session_scope(engine) as session:
        create_team(session, "lab")
        create_team(session, "admins", admin=True)
        secret = issue_token(session, "lab", label="ci")
        admin_secret = issue_token(session, "admins")
    assert secret.startswith("sbt_") and len(secret) > 40
    with session_scope(engine) as session:
        stored = session.exec(select(ApiToken)).all()
        assert all(secret not in (t.token_hash, t.prefix + "x") for t in stored)
        assert all(len(t.token_hash) == 64 for t in stored)
        team = authenticate(session, secret)
        assert team.name == "lab"
        with pytest.raises(AuthError, match="re-evaluate: expected an admin token"):
            require_admin(team, "re-evaluate")
        require_admin(authenticate(session, admin_secret), "re-evaluate")
        with pytest.raises(AuthError, match="unknown"):
            authenticate(session, secret + "x")
        with pytest.raises(AuthError, match="found none"):
            authenticate(session, None)
        with pytest.raises(OrchestratorError, match="already exists"):
            create_team(session, "lab")
    with session_scope(engine) as session:
        assert revoke_token(session, secret[:12]) == 1
    with session_scope(engine) as session, pytest.raises(AuthError, match="revoked"):
        authenticate(session, secret)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_first_submissions_of_a_new_team_share_one_team(kind: str, tmp_path: Path
                                                            ) -> None:
    """The race of two first uploads: each finds the team missing, one insert wins."""
    from contextlib import ExitStack

    from evaluator.orchestrator.auth import ensure_team
    from evaluator.store import Team
    from tests.store.dbsupport import postgres_schema_url

    with ExitStack() as stack:
        url = (sqlite_url(tmp_path) if kind == "sqlite"
               else stack.enter_context(postgres_schema_url()))
        engine = open_store(url)
        with session_scope(engine) as winner:
            ensure_team(winner, "newlab")
        with session_scope(engine) as late:
            real_exec = late.exec
            hidden = {"left": 2}  # its two look-ups ran before the winner's insert

            def exec_hiding_the_team(statement, *args, **kwargs):  # type: ignore[no-untyped-def]
                if hidden["left"] > 0 and "teams" in str(statement).lower():
                    hidden["left"] -= 1
                    return real_exec(select(Team).where(Team.name == "no-such-team"))
                return real_exec(statement, *args, **kwargs)

            late.exec = exec_hiding_the_team  # type: ignore[method-assign]
            team = ensure_team(late, "newlab")
            late.exec = real_exec  # type: ignore[method-assign]
            assert team.name == "newlab" and hidden["left"] == 0
            assert len(late.exec(select(Team).where(Team.name == "newlab")).all()) == 1
