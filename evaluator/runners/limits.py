"""The resource limits of one job, shared by the docker and the local runner."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from evaluator.contract import JobLimits


class RunLimits(BaseModel):
    """Resource limits of one job; the docker runner enforces all, the local runner few.

    The docker runner maps them to the engine: ``timeout_s`` wall clock from start to kill,
    ``mem_limit_gb`` memory with no swap (memswap equal), ``cpus`` CFS quota (nano-CPUs),
    ``pids_limit`` processes and threads, ``tmp_size_mb`` the tmpfs /tmp (it counts against the
    memory limit too), ``output_max_mb`` all of /output (the docker runner's /output is a tmpfs of
    that size: writes past it fail; the local runner checks while the job runs and kills it past
    it), ``log_max_kb`` the log tail kept (and about the log bytes the engine stores).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(default=3600.0, gt=0)
    mem_limit_gb: float = Field(default=16.0, gt=0)
    cpus: float = Field(default=2.0, gt=0)
    pids_limit: int = Field(default=1024, ge=8)
    tmp_size_mb: int = Field(default=1024, gt=0)
    output_max_mb: float = Field(default=1024.0, gt=0)
    log_max_kb: int = Field(default=256, gt=0)

    @classmethod
    def from_job_limits(cls, limits: JobLimits) -> RunLimits:
        """The runner's limits for a service's published ones (the log tail at its default)."""
        return cls(timeout_s=limits.time_limit_s, mem_limit_gb=limits.mem_limit_gb,
                   cpus=limits.cpus, tmp_size_mb=limits.tmp_size_mb,
                   output_max_mb=limits.output_max_mb)

    def published(self, gpus: str = "none") -> JobLimits:
        """These limits as authors are told them (task.json, ``/api/limits``)."""
        return JobLimits(time_limit_s=self.timeout_s, mem_limit_gb=self.mem_limit_gb,
                         cpus=self.cpus, tmp_size_mb=self.tmp_size_mb,
                         output_max_mb=self.output_max_mb, gpus=gpus)

    @property
    def mem_limit_bytes(self) -> int:
        """``mem_limit_gb`` in bytes (GiB: 2**30)."""
        return int(self.mem_limit_gb * 2**30)

    @property
    def output_max_bytes(self) -> int:
        """``output_max_mb`` in bytes (MiB: 2**20)."""
        return int(self.output_max_mb * 2**20)

    @property
    def log_max_bytes(self) -> int:
        """``log_max_kb`` in bytes (KiB: 2**10)."""
        return self.log_max_kb * 2**10
