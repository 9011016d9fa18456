"""The job queue, on Huey: its SQLite storage for the embedded default, Redis for many machines.

A message carries only a job id; the database is the truth about a job (status, lease,
attempts, result), so a message lost with a killed worker, or delivered twice, costs nothing:
claiming is a conditional update and a stale running job is put back by any live worker (see
``evaluator.store.lifecycle`` and ``evaluator.orchestrator.worker``).

``QUEUE_URL``: ``sqlite:///PATH`` (default ``$SPARED_BENCH_HOME/queue.db``) or
``redis://HOST:PORT/DB``; an optional ``?queue=NAME`` picks the queue's name (default
``spared-bench``), so several benches or tests can share one Redis.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from huey import RedisHuey, SqliteHuey
from huey.api import Huey

from evaluator.orchestrator.errors import QueueUnavailable, QueueUrlError

log = logging.getLogger(__name__)

TASK_NAME = "spared_bench.run_job"
DEFAULT_QUEUE_NAME = "spared-bench"

JobHandler = Callable[[int], None]


def split_queue_url(url: str) -> tuple[str, str]:
    """Return (url without ``queue=``, queue name)."""
    # Split by hand: urlunsplit would turn sqlite:////abs/path into sqlite://abs/path.
    base, sep, query_text = url.partition("?")
    query = parse_qsl(query_text, keep_blank_values=True) if sep else []
    name = next((v for k, v in query if k == "queue"), DEFAULT_QUEUE_NAME)
    rest = urlencode([(k, v) for k, v in query if k != "queue"])
    return (f"{base}?{rest}" if rest else base), name


def make_huey(url: str) -> Huey:
    """A Huey instance for ``url`` (see the module doc); raises ``QueueUrlError``.

    Results are not kept by Huey (the database holds them).
    """
    base, name = split_queue_url(url)
    scheme = urlsplit(base).scheme
    if scheme == "sqlite":
        path = base[len("sqlite:///"):] if base.startswith("sqlite:///") else ""
        if not path:
            raise QueueUrlError(url, "expected sqlite:///PATH with a file path, found none")
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # A 30 s busy timeout: several worker processes share the file.
        return SqliteHuey(name, filename=str(Path(path).expanduser()), results=False,
                          timeout=30)
    if scheme in {"redis", "rediss", "unix"}:
        return RedisHuey(name, url=base, results=False, blocking=True, read_timeout=1)
    raise QueueUrlError(url, f"expected sqlite:///PATH or redis://HOST:PORT/DB, found scheme "
                        f"{scheme or 'none'!r}")


def _queue_errors() -> tuple[type[BaseException], ...]:
    # why here: huey imports redis only if it can, and the SQLite queue (the default) must work
    # where redis cannot be imported (Python < 3.11.3 without async_timeout: the compose web
    # app's user, tests/orchestrator/test_intake_service.py)
    import redis

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
            sqlite3.OperationalError, OSError)


class JobQueue:
    """Enqueue job ids, and (in a worker) hand dequeued ids to a handler."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.huey = make_huey(url)
        self._handler: JobHandler | None = None
        self._task = self.huey.task(name=TASK_NAME)(self._dispatch)

    @property
    def kind(self) -> str:
        """``sqlite`` or ``redis``."""
        return "sqlite" if isinstance(self.huey, SqliteHuey) else "redis"

    def set_handler(self, handler: JobHandler | None) -> None:
        """The function a worker runs for each dequeued job id."""
        self._handler = handler

    def _dispatch(self, job_id: int) -> None:
        if self._handler is None:
            raise RuntimeError(f"job {job_id} dequeued by a process with no worker handler")
        self._handler(int(job_id))

    def enqueue(self, job_ids: Iterable[int], *, delay_s: float = 0.0) -> int:
        """Put job ids on the queue (after ``delay_s``); returns how many.

        Raises ``QueueUnavailable`` when the queue refuses (the jobs stay ``queued`` in the
        database; workers re-enqueue such jobs once the queue is empty, see ``Worker``).
        """
        count = 0
        try:
            for job_id in job_ids:
                if delay_s > 0:
                    self._task.schedule(args=(int(job_id),), delay=delay_s)
                else:
                    self._task(int(job_id))
                count += 1
        except _queue_errors() as error:
            raise QueueUnavailable(self.url, str(error).splitlines()[0] if str(error)
                                   else type(error).__name__) from error
        return count

    def pending(self) -> int:
        """Messages waiting to be dequeued (delayed ones too, until a consumer has seen them and
        moved them to the schedule)."""
        return int(self.huey.pending_count())

    def scheduled(self) -> int:
        """Delayed messages a consumer holds in the schedule (retries waiting for their time)."""
        return int(self.huey.scheduled_count())

    def flush(self) -> None:
        """Drop every message of this queue (tests, and `spared-bench queue flush`)."""
        self.huey.flush()

    def close(self) -> None:
        """Close the queue's connections (Redis pool, SQLite handle)."""
        storage = self.huey.storage
        pool = getattr(getattr(storage, "conn", None), "connection_pool", None)
        if pool is not None:
            pool.disconnect()
        close = getattr(storage, "close", None)
        if callable(close):
            close()

    def consumer(self, *, workers: int, max_delay_s: float = 1.0, **options: Any) -> Any:
        """A Huey consumer running ``workers`` threads on this queue (a worker process's loop).

        SIGTERM and SIGINT stop it gracefully (running jobs finish); SIGKILL leaves them to the
        lease mechanism. ``max_delay_s`` caps the SQLite storage's polling interval.
        """
        return self.huey.create_consumer(
            workers=workers, worker_type="thread", periodic=False, initial_delay=0.05,
            backoff=1.5, max_delay=max_delay_s, scheduler_interval=1, graceful_signal="TERM",
            check_worker_health=True, **options)
