"""The tables of the results database (sqlmodel): teams, tokens, releases, submissions, jobs,
attempts and results.

Times are aware UTC datetimes (``utcnow()``; sqlmodel's ``UTCDateTime`` refuses naive ones and
returns UTC from SQLite and Postgres alike). The schema is created and upgraded by
Alembic (``evaluator/store/migrations``), never by ``create_all`` outside tests of the models.
Importing this module imports neither docker nor torch (the leaderboard reads these tables).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
"""``queued`` waits for a worker, ``running`` is claimed by one (with a lease), the other three
are final."""

JOB_STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

FailureKind = Literal["model", "infra"]
"""Why a job failed: the model's own fault (never retried) or the infrastructure's (retried up to
``Settings.job_max_attempts``)."""


def utcnow() -> datetime:
    """Now, as the aware UTC datetime every table stores."""
    return datetime.now(UTC)


class Team(SQLModel, table=True):
    """A submitting team (or the maintainers' own, for baselines)."""

    __tablename__ = "teams"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    is_admin: bool = False
    daily_submission_limit: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    """A team's API token, stored as the SHA-256 of the secret (the secret is shown once).

    Tokens are 256-bit random secrets, so a fast hash is enough: no dictionary attack applies.
    """

    __tablename__ = "tokens"

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="teams.id", index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=16)
    label: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ReleaseRecord(SQLModel, table=True):
    """A published dataset release; exactly one is current at a time."""

    __tablename__ = "releases"

    release_id: str = Field(primary_key=True, max_length=64)
    label: str | None = Field(default=None, max_length=100)
    created_at: datetime
    published_at: datetime = Field(default_factory=utcnow)
    is_current: bool = Field(default=False, index=True)
    # {dataset: [tracks]}: what jobs a full evaluation on this release consists of.
    tracks: dict[str, list[str]] = Field(default_factory=dict, sa_column=Column(JSON,
                                                                                nullable=False))


class Submission(SQLModel, table=True):
    """One submitted image, identified by its content digest (never by a tag).

    An entry is a team's name; each submission under it is one ``version`` (1, 2, ...). On a
    release the newest version with results there is ranked and shown; older ones stay, with
    their results, on their own pages (``queries.ranked_versions``). ``withdrawn_at``: the
    owning team took this version off the public pages (admins may put it back); ``hidden``
    is the admins' own switch.
    """

    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("image_digest", name="uq_submissions_image_digest"),
        UniqueConstraint("team_id", "name", "version", name="uq_submissions_team_name_version"),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="teams.id", index=True)
    name: str = Field(max_length=100)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    image_ref: str = Field(max_length=300)
    image_digest: str = Field(max_length=80)
    image_size_bytes: int = 0
    platform: str = Field(default="linux/amd64", max_length=40)
    is_baseline: bool = Field(default=False, index=True)
    hidden: bool = False
    created_at: datetime = Field(default_factory=utcnow, index=True)
    version: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    withdrawn_at: datetime | None = None
    # Validated http(s) addresses (``evaluator.core.links``), shown as nofollow links.
    paper_url: str | None = Field(default=None, max_length=500)
    code_url: str | None = Field(default=None, max_length=500)


class Job(SQLModel, table=True):
    """One (submission, release, dataset, track, run) evaluation and where it stands.

    ``run`` 0 is the evaluation the leaderboard ranks; runs 1, 2, ... are re-runs an admin asked
    for (or the baselines' re-run on every release), compared with run 0 for reproducibility.
    ``lease_token`` changes on every claim; a worker's writes about the job only count while its
    token is the job's, so a worker presumed dead cannot overwrite its successor.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("submission_id", "release_id", "dataset", "track", "run",
                         name="uq_jobs_entry_run"),
        Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submissions.id", index=True)
    release_id: str = Field(foreign_key="releases.release_id", max_length=64, index=True)
    dataset: str = Field(max_length=100)
    track: str = Field(max_length=20)
    run: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    status: str = Field(default="queued", max_length=20)
    failure_kind: str | None = Field(default=None, max_length=20)
    message: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    attempts: int = 0
    max_attempts: int = 3
    queued_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    container_started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    worker: str | None = Field(default=None, max_length=200)
    gpus: str = Field(default="", max_length=100)
    lease_token: str | None = Field(default=None, max_length=64)
    # "attempt:<id>": the job_attempts row whose log_text holds the last run's log tail.
    log_ref: str | None = Field(default=None, max_length=100)


class JobAttempt(SQLModel, table=True):
    """One run of a job by a worker: outcome, timings and the capped log tail."""

    __tablename__ = "job_attempts"
    __table_args__ = (UniqueConstraint("job_id", "attempt", name="uq_job_attempts_number"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True)
    attempt: int
    worker: str = Field(max_length=200)
    gpus: str = Field(default="", max_length=100)
    lease_token: str = Field(max_length=64)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    outcome: str | None = Field(default=None, max_length=40)
    message: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    log_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # {phase: seconds}: staging, model (container), scoring, ...; for the benchmark and admins.
    timings: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON,
                                                                              nullable=False))


class Result(SQLModel, table=True):
    """The score of one job: SpaRED's metrics, their block-bootstrap intervals, the per-block
    sufficient statistics behind them and provenance; at most one per entry and run."""

    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("submission_id", "release_id", "dataset", "track", "run",
                         name="uq_results_entry_run"),
        Index("ix_results_release_track", "release_id", "track"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", unique=True)
    submission_id: int = Field(foreign_key="submissions.id", index=True)
    release_id: str = Field(foreign_key="releases.release_id", max_length=64)
    dataset: str = Field(max_length=100)
    track: str = Field(max_length=20)
    run: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    mse: float
    mae: float
    pcc_gene: float
    pcc_patch: float
    r2_gene: float | None = None
    r2_patch: float | None = None
    n_spots: int
    n_genes: int
    n_measured: int
    constant_genes: int = 0
    completed_mse: float | None = None
    completed_pcc_gene: float | None = None
    # 95 % spatial block-bootstrap intervals (``evaluator.scoring.uncertainty``); null for
    # results scored before scorer 1.1.0.
    mse_low: float | None = None
    mse_high: float | None = None
    pcc_gene_low: float | None = None
    pcc_gene_high: float | None = None
    # ``BlockStats.to_bytes()``: what the bootstrap needs, so predictions are never read again.
    # About 48 bytes x blocks x genes (float64, barely compressible): ~0.3 MB for a 4,000-spot
    # hidden slide (~60 tiles) with 128 genes.
    block_stats: bytes | None = Field(default=None, sa_column=Column(LargeBinary,
                                                                     nullable=True))
    # SHA-256 of the predictions array (float32, C order): identical runs, identical hash.
    predictions_sha256: str | None = Field(default=None, max_length=64)
    image_digest: str = Field(max_length=80)
    scorer_version: str = Field(max_length=20)
    scored_at: datetime
    created_at: datetime = Field(default_factory=utcnow)
    # The whole JobScore (every metric and count, completed metrics, provenance) as JSON.
    score: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class StoreState(SQLModel, table=True):
    """One row (id 1): counters every process reads to know what it has cached is stale.

    ``view_generation`` is bumped by every change to what the leaderboard shows that no row
    count reveals (an entry hidden or shown again); the web app's cache keys include it.
    """

    __tablename__ = "store_state"

    id: int = Field(default=1, primary_key=True)
    view_generation: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class WorkerToken(SQLModel, table=True):
    """A worker's credential for the service's worker endpoints (``/api/worker/...``), stored
    as the SHA-256 of the secret (shown once). Never a team's: it opens no team or admin
    endpoint, and a team's token opens no worker endpoint. Revoked: refused at once."""

    __tablename__ = "worker_tokens"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class WorkerRecord(SQLModel, table=True):
    """A worker process as it reports itself: where it runs, its GPUs, its last heartbeat.

    Written by the worker at start, on every upkeep round (``heartbeat_at``) and at a clean
    stop (``stopped_at``); its current jobs and throughput are read from ``jobs`` and
    ``job_attempts`` (``store.workers.list_workers``).
    """

    __tablename__ = "workers"

    name: str = Field(primary_key=True, max_length=200)
    host: str = Field(default="", max_length=200)
    pid: int = 0
    gpu_ids: str = Field(default="", max_length=100)
    # What the GPUs are, as the driver names them ("0: NVIDIA H100 80GB HBM3"), or "".
    gpu_names: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    slots: int = 1
    started_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime = Field(default_factory=utcnow, index=True)
    stopped_at: datetime | None = None


TABLES: tuple[type[SQLModel], ...] = (Team, ApiToken, ReleaseRecord, Submission, Job, JobAttempt,
                                      Result, StoreState, WorkerToken, WorkerRecord)
