"""Run one claimed job through the job pipeline and say whose fault a failure was.

The pipeline (``evaluator.jobs``: stage → run container → validate → score) is the same one
``spared-bench check`` and ``evaluate`` use; here it runs the submission's image by content
id (never a tag), with labels naming the worker and the job so a restarted worker can remove
the containers its killed predecessor left, and records when the container started.

Failures are sorted in two kinds: ``model`` (the submission's own doing: non-zero exit, time or
memory limit, bad output; final) and ``infra`` (engine gone, image not on this engine, staging
or scoring trouble, anything unexpected: retried up to the job's ``max_attempts``).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import requests
import urllib3

from evaluator.core.errors import BenchError
from evaluator.datasets.release import Release, Track
from evaluator.jobs import TaskSettings, run_staged_job, stage_inputs
from evaluator.orchestrator.predictions import keep_predictions
from evaluator.runners import RunLimits, RunOutcome, run_container
from evaluator.scoring import JobScore
from evaluator.store import Claim, utcnow

log = logging.getLogger(__name__)

WORKER_LABEL = "org.sparedbench.worker"
JOB_ID_LABEL = "org.sparedbench.job-id"

MODEL_STATUSES = frozenset({"image_invalid", "exit_nonzero", "timed_out", "out_of_memory",
                            "output_missing", "output_invalid"})
"""Runner statuses that are the submission's own fault: never retried."""

ReportKind = Literal["succeeded", "model", "infra"]


@dataclass
class ExecutionReport:
    """What running a claimed job came to, in the terms the store records."""

    kind: ReportKind
    status: str
    message: str
    score: JobScore | None = None
    log_text: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    container_started_at: datetime | None = None
    model_card: dict[str, Any] | None = None


@dataclass
class LabelledDockerExecutor:
    """``evaluator.jobs.Executor`` running an image by id with worker/job labels.

    ``on_started`` is called with the time the container started.
    """

    submission: str
    labels: dict[str, str]
    client: Any = None
    on_started: Callable[[datetime], None] | None = None
    runner: Literal["docker", "local"] = "docker"

    def __call__(self, input_dir: Path, output_dir: Path, limits: RunLimits,
                 gpus: list[int] | None, validate_output: Callable[[Path], None]) -> RunOutcome:
        def started(_container_id: str) -> None:
            if self.on_started is not None:
                self.on_started(utcnow())

        return run_container(self.submission, input_dir, output_dir, limits, gpus,
                             client=self.client, validate_output=validate_output,
                             on_started=started, labels=self.labels)


def classify(status: str) -> ReportKind:
    """The failure kind of a pipeline status (``succeeded`` for success)."""
    if status == "succeeded":
        return "succeeded"
    return "model" if status in MODEL_STATUSES else "infra"


def execute_claim(
    claim: Claim,
    release: Release,
    *,
    limits: RunLimits,
    staging_root: Path,
    work_dir: Path,
    seed: int,
    gpus_told: str = "none",
    client: Any = None,
    on_container_started: Callable[[datetime], None] | None = None,
    predictions_home: Path | None = None,
) -> ExecutionReport:
    """Stage, run, validate and score a claimed job; never raises for a job's failure.

    Evaluator-side exceptions (staging, folders, engine settings, anything unexpected) become an
    ``infra`` report carrying the error's message. With ``predictions_home``, a scored job's
    predictions are kept there for its owners (``predictions.keep_predictions``).
    """
    t0 = time.perf_counter()
    started: dict[str, datetime] = {}

    def record_start(at: datetime) -> None:
        started["at"] = at
        if on_container_started is not None:
            on_container_started(at)

    executor = LabelledDockerExecutor(
        submission=claim.image_digest,
        labels={WORKER_LABEL: claim.worker, JOB_ID_LABEL: str(claim.job_id)},
        client=client, on_started=record_start)
    track: Track = claim.track  # type: ignore[assignment]
    settings = TaskSettings(time_limit_s=limits.timeout_s,
                            device="cuda" if claim.gpus else "cpu", seed=seed,
                            limits=limits.published(gpus_told))
    try:
        t_stage = time.perf_counter()
        staged = stage_inputs("evaluation", release, claim.dataset, track, settings,
                              staging_root)
        stage_s = time.perf_counter() - t_stage
        work_dir.mkdir(parents=True, exist_ok=True)
        keep = (Path(tempfile.mkdtemp(prefix=f"keep-{claim.job_id}-", dir=work_dir))
                if predictions_home is not None else None)
        try:
            result = run_staged_job(executor, staged, limits, gpus=list(claim.gpus) or None,
                                    work_dir=work_dir, stage_s=stage_s, keep_output=keep)
            if keep is not None and predictions_home is not None:
                _keep_predictions(claim.job_id, predictions_home, keep, result.score)
        finally:
            if keep is not None:
                shutil.rmtree(keep, ignore_errors=True)
    except BenchError as error:
        return ExecutionReport("infra", "evaluator_error", str(error),
                               timings={"total_s": time.perf_counter() - t0},
                               container_started_at=started.get("at"))
    except Exception as error:  # a bug or an OS error: the job is retried, the worker lives
        if _engine_error(error):
            # The engine's connection broke in a way the runner did not map (e.g. a chunked
            # response cut short when the engine died mid-wait).
            return ExecutionReport("infra", "engine_unavailable",
                                   f"the Docker engine went away: {type(error).__name__}: "
                                   f"{error}", timings={"total_s": time.perf_counter() - t0},
                                   container_started_at=started.get("at"))
        log.exception("job %s: unexpected error", claim.job_id)
        return ExecutionReport("infra", "evaluator_error",
                               f"unexpected evaluator error: {type(error).__name__}: {error}",
                               timings={"total_s": time.perf_counter() - t0},
                               container_started_at=started.get("at"))
    timings = result.timings.model_dump()
    message = result.message
    if result.notes:
        message = f"{message} ({'; '.join(result.notes)})"
    kind = classify(result.status)
    if kind == "succeeded" and result.score is None:
        kind, message = "infra", "the job succeeded but produced no score"
    card = result.model_card.model_dump(mode="json") if result.model_card else None
    return ExecutionReport(kind, result.status, message, score=result.score,
                           log_text=result.log_tail, timings=timings,
                           container_started_at=started.get("at"), model_card=card)


def _keep_predictions(job_id: int, home: Path, kept: Path, score: Any) -> None:
    """Keep a scored job's predictions for its owners; a failure costs the download only."""
    source = kept / "predictions.npy"
    if score is None or not score.predictions_sha256 or not source.is_file():
        return
    try:
        if keep_predictions(home, source, score.predictions_sha256) is None:
            log.info("job %s: predictions too large to keep", job_id)
    except (OSError, ValueError) as error:
        log.warning("job %s: predictions not kept: %s", job_id, error)


def scrub_paths(message: str, home: Path) -> str:
    """``message`` with host paths under the evaluator's home (staging, work, images, releases)
    and the engine's data root cut to ``<host path>/<last part>``; container paths (/input,
    /output, /tmp, an image's own paths) stay as they are."""
    roots = sorted({str(home).rstrip("/"), str(Path(home).resolve()).rstrip("/")},
                   key=len, reverse=True)
    alternatives = [re.escape(r) for r in roots if r] + [re.escape("/var/lib/docker")]
    pattern = rf"(?<![\w./])(?:{'|'.join(alternatives)})(?:/[^\s'\":,;)]+)*"
    return re.sub(pattern, lambda m: "<host path>/" + m.group().rsplit("/", 1)[-1], message)


def _engine_error(error: BaseException) -> bool:
    """True for an error of talking to the engine (requests' or urllib3's connection family)."""
    return isinstance(error, requests.exceptions.RequestException
                      | urllib3.exceptions.HTTPError | ConnectionError)
