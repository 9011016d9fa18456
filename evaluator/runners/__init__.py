"""Runners: execute a submission on a job's inputs and report a ``RunOutcome``.

``run_container`` (docker_runner) is the real, isolated runner; ``run_local`` (local_runner) runs
a trusted command as a plain process with no isolation, for development.
"""

from evaluator.runners.docker_runner import (
    JOB_LABEL,
    container_settings,
    docker_client,
    remove_job_containers,
    run_container,
)
from evaluator.runners.errors import (
    ContainerFailed,
    EngineUnavailable,
    ImageMissing,
    JobFolderError,
    RunnerConfigError,
    RunnerError,
)
from evaluator.runners.jobfs import CONTAINER_GID, CONTAINER_UID, OutputValidator
from evaluator.runners.limits import RunLimits
from evaluator.runners.local_runner import run_local
from evaluator.runners.result import PREDICTIONS_FILE, RunDurations, RunOutcome, RunStatus

__all__ = [
    "CONTAINER_GID",
    "CONTAINER_UID",
    "JOB_LABEL",
    "PREDICTIONS_FILE",
    "ContainerFailed",
    "EngineUnavailable",
    "ImageMissing",
    "JobFolderError",
    "OutputValidator",
    "RunDurations",
    "RunLimits",
    "RunOutcome",
    "RunStatus",
    "RunnerConfigError",
    "RunnerError",
    "container_settings",
    "docker_client",
    "remove_job_containers",
    "run_container",
    "run_local",
]
