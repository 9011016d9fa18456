"""Settings from the environment, in one place."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evaluator.core.errors import BenchError


def _default_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "spared-bench"


_ENV_VARIABLES: dict[str, str] = {
    "home": "SPARED_BENCH_HOME",
    "seed": "SPARED_BENCH_SEED",
    "database_url": "DATABASE_URL",
    "queue_url": "QUEUE_URL",
    "max_image_mb": "SPARED_BENCH_MAX_IMAGE_MB",
    "daily_submissions": "SPARED_BENCH_DAILY_SUBMISSIONS",
    "job_max_attempts": "SPARED_BENCH_JOB_MAX_ATTEMPTS",
    "spackle_max_steps": "SPARED_BENCH_SPACKLE_STEPS",
    "spackle_budget": "SPARED_BENCH_SPACKLE_BUDGET",
    "public_url": "SPARED_BENCH_PUBLIC_URL",
    "job_time_limit_s": "SPARED_BENCH_JOB_TIME_LIMIT_S",
    "job_mem_limit_gb": "SPARED_BENCH_JOB_MEM_LIMIT_GB",
    "job_cpus": "SPARED_BENCH_JOB_CPUS",
    "job_tmp_mb": "SPARED_BENCH_JOB_TMP_MB",
    "job_output_mb": "SPARED_BENCH_JOB_OUTPUT_MB",
    "job_gpus": "SPARED_BENCH_JOB_GPUS",
    "worker_cache_gb": "SPARED_BENCH_WORKER_CACHE_GB",
    "registry_url": "SPARED_BENCH_REGISTRY_URL",
    "registry_api_url": "SPARED_BENCH_REGISTRY_API_URL",
    "registry_key": "SPARED_BENCH_REGISTRY_KEY",
}


class Settings(BaseModel):
    """Runtime settings, read from environment variables by ``Settings.from_env()``.

    Variables:
    - ``SPARED_BENCH_JOB_TIME_LIMIT_S``, ``SPARED_BENCH_JOB_MEM_LIMIT_GB``,
      ``SPARED_BENCH_JOB_CPUS``, ``SPARED_BENCH_JOB_TMP_MB``, ``SPARED_BENCH_JOB_OUTPUT_MB``: the
      limits of every job (defaults 3600 s, 16 GiB, 2 CPUs, 1024 MiB of /tmp, 1024 MiB of
      /output). The one source of them: workers run jobs with them, the web app publishes
      them (``/api/limits``, the guide, receipts, entry pages), task.json carries them, and
      ``check``/``evaluate`` use them unless told otherwise (``check --server`` fetches a
      service's).
    - ``SPARED_BENCH_JOB_GPUS``: what a job that asks for ``cuda`` gets, as authors should read
      it (default ``none``: CPU only; e.g. ``1 NVIDIA H200 (141 GB)``).
    - ``SPARED_BENCH_HOME``: root folder for processed datasets, releases, caches and the
      embedded database (default ``$XDG_DATA_HOME/spared-bench`` or
      ``~/.local/share/spared-bench``).
    - ``SPARED_BENCH_SEED``: default seed for synthetic data and training (default 0).
    - ``SPARED_BENCH_PROGRESS``: ``0`` turns progress bars off (default on when stderr is a TTY
      or when set to ``1``).
    - ``DATABASE_URL``: SQLAlchemy URL of the results database (default the SQLite file
      ``$SPARED_BENCH_HOME/bench.db``); ``postgresql://user:pw@host/db`` for the scaled stack.
    - ``QUEUE_URL``: job queue (default the SQLite file ``$SPARED_BENCH_HOME/queue.db``, i.e.
      ``sqlite:///...``); ``redis://host:6379/0`` for many workers on many machines.
    - ``SPARED_BENCH_MAX_IMAGE_MB``: largest submission image accepted, archive or unpacked
      (default 8192).
    - ``SPARED_BENCH_DAILY_SUBMISSIONS``: submissions per team per UTC day (default 5; a team's
      own limit in the database overrides it).
    - ``SPARED_BENCH_JOB_MAX_ATTEMPTS``: runs of one job before an infrastructure failure (engine
      gone, worker killed) is final (default 3); a model's own failure is never retried.
    - ``SPARED_BENCH_SPACKLE_BUDGET``: ``paper`` trains SpaCKLE at the paper's scale (18
      neighbours, 10,000 steps: for a GPU), ``cpu`` at the CPU budget below, ``auto`` (default)
      the paper's when an NVIDIA GPU is visible, else the CPU's. Part of the release id.
    - ``SPARED_BENCH_SPACKLE_STEPS``: training steps of the SpaCKLE models a release build trains
      for datasets without ``c_t_log1p`` (default: SpaCKLE's own budget, 30 epochs within
      200-400 steps); part of the release id.
    - ``SPARED_BENCH_PUBLIC_URL``: the web app's address as its users reach it (e.g.
      ``https://bench.example.org``), shown in the submission guide and the OpenAPI document's
      ``servers``; never taken from a request's ``Host`` header. Unset: ``spared-bench serve``
      uses its own ``http://HOST:PORT`` when that is a specific address, else the documents
      show a placeholder.
    - ``SPARED_BENCH_WORKER_CACHE_GB``: the size a worker's local cache of release files
      (``$SPARED_BENCH_HOME/worker-cache``, fetched by content address from the service) is
      kept under by evicting the least recently used files (default 100 GB; the files a
      running job uses are never evicted, so one job larger than the cache still runs).
    - ``SPARED_BENCH_REGISTRY_URL``: the submission registry as authors and the workers'
      Docker engines reach it (e.g. ``http://127.0.0.1:5000``; unset: no registry, submissions
      are uploaded as ``docker save`` archives). Authors push to ``HOST:PORT/team-<id>/NAME``
      with their team token (``evaluator.orchestrator.registry``).
    - ``SPARED_BENCH_REGISTRY_API_URL``: the same registry as the web app reaches it, when that
      differs (a container network name; default ``SPARED_BENCH_REGISTRY_URL``).
    - ``SPARED_BENCH_REGISTRY_KEY``: the PEM file (RSA key and certificate) that signs registry
      tokens; the registry trusts its certificate (default
      ``$SPARED_BENCH_HOME/registry/token-key.pem``, created on first use).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default_factory=_default_home)
    seed: int = 0
    progress: bool | None = None
    database_url: str | None = None
    queue_url: str | None = None
    max_image_mb: float = Field(default=8192.0, gt=0)
    daily_submissions: int = Field(default=5, ge=0)
    job_max_attempts: int = Field(default=3, ge=1)
    spackle_max_steps: int | None = Field(default=None, ge=1)
    spackle_budget: Literal["auto", "cpu", "paper"] = "auto"
    job_time_limit_s: float = Field(default=3600.0, gt=0)
    job_mem_limit_gb: float = Field(default=16.0, gt=0)
    job_cpus: float = Field(default=2.0, gt=0)
    job_tmp_mb: int = Field(default=1024, gt=0)
    job_output_mb: float = Field(default=1024.0, gt=0)
    job_gpus: str = Field(default="none", min_length=1, max_length=200)
    worker_cache_gb: float = Field(default=100.0, gt=0)
    public_url: str | None = Field(default=None, max_length=300,
                                   pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/\-]*)?$")

    registry_url: str | None = Field(default=None, max_length=300,
                                     pattern=r"^https?://[A-Za-z0-9.\-\[\]]+(:[0-9]{1,5})?/?$")
    registry_api_url: str | None = Field(
        default=None, max_length=300, pattern=r"^https?://[A-Za-z0-9.\-\[\]]+(:[0-9]{1,5})?/?$")
    registry_key: Path | None = None

    @classmethod
    def from_env(cls) -> Settings:
        """Build settings from ``os.environ``; unset variables take their defaults.

        Raises ``BenchError`` naming the variable when a value does not parse.
        """
        values: dict[str, object] = {}
        for key, variable in _ENV_VARIABLES.items():
            if value := os.environ.get(variable):
                values[key] = value
        if home := values.get("home"):
            values["home"] = Path(str(home)).expanduser().resolve()
        if (progress := os.environ.get("SPARED_BENCH_PROGRESS")) is not None:
            values["progress"] = progress not in {"0", "false", "no", ""}
        try:
            return cls(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else "?"
            raise BenchError(
                f"environment variable {_ENV_VARIABLES.get(field, field)}: expected "
                f"{error['msg'].lower()}, found {values.get(field)!r}"
            ) from exc

    @property
    def resolved_database_url(self) -> str:
        """``database_url``, or the embedded SQLite database under ``home``."""
        return self.database_url or f"sqlite:///{self.home / 'bench.db'}"

    @property
    def resolved_queue_url(self) -> str:
        """``queue_url``, or the embedded SQLite queue under ``home``."""
        return self.queue_url or f"sqlite:///{self.home / 'queue.db'}"

    def show_progress(self) -> bool:
        """Return whether to draw progress bars: as set, else only when stderr is a terminal."""
        return self.progress if self.progress is not None else sys.stderr.isatty()

    @property
    def registry_key_path(self) -> Path:
        """``registry_key``, or the key file under ``home``."""
        return self.registry_key or self.home / "registry" / "token-key.pem"

    @property
    def processed_dir(self) -> Path:
        """Folder of processed dataset files, one ``<name>.h5ad`` each."""
        return self.home / "processed"

    @property
    def releases_dir(self) -> Path:
        """Folder of immutable releases, one sub-folder per release id."""
        return self.home / "releases"

    @property
    def worker_cache_dir(self) -> Path:
        """A worker's cache of release files fetched from the service (``blobcache``)."""
        return self.home / "worker-cache"

    @property
    def worker_cache_bytes(self) -> int:
        """``worker_cache_gb`` in bytes."""
        return int(self.worker_cache_gb * 1e9)

    @property
    def cache_dir(self) -> Path:
        """Folder of caches (e.g. trained completion models)."""
        return self.home / "cache"
