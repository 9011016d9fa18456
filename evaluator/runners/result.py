"""What a runner returns: one ``RunOutcome`` per job, whatever happened."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluator.runners.errors import ContainerFailed, EngineUnavailable, ImageMissing

RunStatus = Literal[
    "succeeded",
    "image_missing",
    "image_invalid",
    "exit_nonzero",
    "timed_out",
    "out_of_memory",
    "output_missing",
    "output_invalid",
    "engine_unavailable",
]

PREDICTIONS_FILE = "predictions.npy"


class RunDurations(BaseModel):
    """Wall seconds of a job's phases; a phase not reached stays 0."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resolve_s: float = 0.0
    create_s: float = 0.0
    run_s: float = 0.0
    collect_s: float = 0.0
    remove_s: float = 0.0
    total_s: float = 0.0


class RunOutcome(BaseModel):
    """The outcome of one job: status, exit code, log tail, timings and what ran.

    ``message`` is the one-line explanation shown to the author ("expected X, found Y");
    ``log_tail`` is the end of stdout+stderr, at most ``RunLimits.log_max_kb``.
    ``image_id`` is the content id the job actually ran (immutable, unlike a tag);
    ``repo_digest`` the registry digest when the image has one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: RunStatus
    runner: Literal["docker", "local"]
    image: str
    message: str
    image_id: str | None = None
    repo_digest: str | None = None
    exit_code: int | None = None
    log_tail: str = ""
    log_truncated: bool = False
    output_bytes: int = 0
    durations: RunDurations = Field(default_factory=RunDurations)
    notes: list[str] = Field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """True when the job exited 0 and left a valid output."""
        return self.status == "succeeded"

    def raise_for_status(self) -> None:
        """Raise the matching ``RunnerError`` unless the job succeeded.

        Raises ``EngineUnavailable``, ``ImageMissing`` or ``ContainerFailed`` (carrying status,
        exit code and log tail).
        """
        if self.status == "succeeded":
            return
        if self.status == "engine_unavailable":
            raise EngineUnavailable(self.message)
        if self.status == "image_missing":
            raise ImageMissing(self.image)
        raise ContainerFailed(self.image, self.exit_code, self.log_tail, self.status, self.message)
