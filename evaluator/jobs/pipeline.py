"""One job, end to end: stage → run → validate → score; the same path for `check` and `evaluate`.

A job is (submission, release, dataset, track, purpose). ``purpose`` is ``evaluation`` (the
hidden split, scored against the release's truth) or ``validation`` (public data only, see
``staging.validation_split``): both stage a folder of the same shape, run the submission the
same way and judge its output with the same code; only the spots differ.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from evaluator.contract import (
    MODEL_CARD_FILE,
    PREDICTIONS_FILE,
    ContractError,
    ModelCard,
    TaskSpec,
    read_model_card,
)
from evaluator.core.errors import BenchError
from evaluator.core.fsio import atomic_path
from evaluator.core.text import clean_text
from evaluator.datasets.release import Release, Track
from evaluator.jobs.errors import JobError, OutputError
from evaluator.jobs.staging import Purpose, StagedInputs, TaskSettings, stage_inputs
from evaluator.runners import RunLimits, RunOutcome, RunStatus, run_container, run_local
from evaluator.runners.jobfs import remove_tree
from evaluator.scoring import JobScore, PredictionError, load_predictions, score_predictions
from evaluator.scoring.truth import TruthSet, load_truth, truth_from_arrays

log = logging.getLogger(__name__)

# A job's statuses: the runner's, and scoring's own failure.
JobStatus = RunStatus | Literal["scoring_failed"]

LOCAL_RUNNER_WARNING = (
    "WARNING: the local runner runs the command as a plain process with NO isolation: it can "
    "read the hidden truth, the network and every file of this user. Use it only for trusted "
    "code (the baselines, your own model); results are not comparable to a docker evaluation's "
    "limits.")


class Executor(Protocol):
    """Runs a submission once on an input folder (the docker or the local runner)."""

    runner: Literal["docker", "local"]
    submission: str

    def __call__(self, input_dir: Path, output_dir: Path, limits: RunLimits,
                 gpus: list[int] | None, validate_output: Callable[[Path], None]) -> RunOutcome:
        """Run; return the runner's outcome (its statuses, never raising for job failures)."""
        ...


@dataclass
class DockerExecutor:
    """The real runner: the image in an isolated container (``run_container``)."""

    submission: str
    client: Any = None
    runner: Literal["docker", "local"] = "docker"

    def __call__(self, input_dir: Path, output_dir: Path, limits: RunLimits,
                 gpus: list[int] | None, validate_output: Callable[[Path], None]) -> RunOutcome:
        return run_container(self.submission, input_dir, output_dir, limits, gpus,
                             client=self.client, validate_output=validate_output,
                             labels={"org.sparedbench.purpose": "job"})


@dataclass
class LocalExecutor:
    """Development runner: the command as a local process, NO isolation (``run_local``)."""

    submission: str
    runner: Literal["docker", "local"] = "local"

    def __call__(self, input_dir: Path, output_dir: Path, limits: RunLimits,
                 gpus: list[int] | None, validate_output: Callable[[Path], None]) -> RunOutcome:
        return run_local(local_argv(self.submission), input_dir, output_dir, limits, gpus,
                         validate_output=validate_output)


def local_argv(command: str) -> list[str]:
    """Split a local command; make it independent of the job's working directory.

    The local runner starts the command in the job's output folder, so arguments naming
    existing files relative to the caller's folder become absolute, and a bare ``python`` /
    ``python3`` is the evaluator's own interpreter (it has numpy and h5py for the SDK).
    """
    argv = shlex.split(command)
    if not argv:
        raise JobError("local runner: expected a command, found an empty string")
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return [argv[0]] + [str(Path(a).resolve()) if not Path(a).is_absolute() and Path(a).exists()
                        else a for a in argv[1:]]


class JobTimings(BaseModel):
    """Wall seconds of a job's phases.

    ``engine_s`` is the runner's own overhead (resolve, create, collect, remove: everything but
    the model's run and the output validation), ``model_s`` the submission's run from start to
    exit, ``validate_s`` the output checks, ``score_s`` truth loading and metrics.
    """

    model_config = ConfigDict(extra="forbid")

    stage_s: float = 0.0
    engine_s: float = 0.0
    model_s: float = 0.0
    validate_s: float = 0.0
    score_s: float = 0.0
    total_s: float = 0.0


class JobResult(BaseModel):
    """Everything about one job: what ran, on what, what happened, the score when it succeeded.

    ``message`` is the author-facing one-line explanation; ``log_tail`` the end of the
    submission's output (capped by ``RunLimits.log_max_kb``).
    """

    model_config = ConfigDict(extra="forbid")

    submission: str
    runner: Literal["docker", "local"]
    purpose: Purpose
    release_id: str
    dataset: str
    track: Track
    status: JobStatus
    message: str
    image_id: str | None = None
    exit_code: int | None = None
    log_tail: str = ""
    holdout: str = ""
    model_card: ModelCard | None = None
    score: JobScore | None = None
    timings: JobTimings = Field(default_factory=JobTimings)
    notes: list[str] = Field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        """True when the job ran, its output was valid and it was scored."""
        return self.status == "succeeded" and self.score is not None


@dataclass
class _OutputCheck:
    """The validation hook handed to the runner; keeps what it read for scoring."""

    task: TaskSpec
    predictions: np.ndarray | None = None
    model_card: ModelCard | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __call__(self, output_dir: Path) -> None:
        start = time.perf_counter()
        try:
            self.predictions = validate_output(output_dir, self.task)
            card = Path(output_dir) / MODEL_CARD_FILE
            if card.exists():
                try:
                    self.model_card = read_model_card(card)
                except ContractError as exc:
                    # model.json is optional: a bad one costs the author the card, not the job.
                    self.notes.append(str(exc).replace(str(card), f"/output/{MODEL_CARD_FILE}"))
        finally:
            self.seconds = time.perf_counter() - start


def validate_output(output_dir: Path, task: TaskSpec) -> np.ndarray:
    """Load /output/predictions.npy under the contract; raise ``OutputError`` for the author.

    Checks (via ``evaluator.scoring.load_predictions``): a .npy file, at most the float32 data
    plus a header in size, dtype float32, shape (n_test_spots, n_genes), all values finite.
    """
    path = Path(output_dir) / PREDICTIONS_FILE
    where = f"/output/{PREDICTIONS_FILE}"
    try:
        # Twice the float32 bytes here, so that a float64 file is told about its dtype (the
        # actual mistake) rather than its size; the exact bound is checked after.
        predictions = load_predictions(path, expected_shape=task.predictions_shape,
                                       max_bytes=2 * task.predictions_max_bytes)
    except PredictionError as exc:
        expected = exc.expected
        if exc.field == "size":
            expected = f"at most {task.predictions_max_bytes} bytes"
        raise OutputError(where, exc.field, expected, exc.found) from exc
    size = path.stat().st_size
    if size > task.predictions_max_bytes:
        raise OutputError(where, "size", f"at most {task.predictions_max_bytes} bytes",
                          f"{size} bytes")
    return predictions


def load_job_truth(staged: StagedInputs) -> TruthSet:
    """The truth a staged job is scored against (release truth or validation truth.npz)."""
    track = staged.task.track
    if staged.purpose == "evaluation":
        return load_truth(staged.truth_path, track=track)
    with np.load(staged.truth_path, allow_pickle=False) as npz:
        return truth_from_arrays(
            npz["truth"], npz["mask"], dataset=staged.task.dataset, track=track,
            completed=npz["completed"] if "completed" in npz.files else None,
            genes=[str(g) for g in npz["genes"]], release_id=staged.release_id)


def run_staged_job(executor: Executor, staged: StagedInputs, limits: RunLimits, *,
                   gpus: list[int] | None = None, work_dir: Path | None = None,
                   keep_output: Path | None = None, stage_s: float = 0.0) -> JobResult:
    """Run a submission on staged inputs, validate its output and score it.

    Job failures (image missing, exit code, time or memory limit, bad output, scoring) become
    the result's status and message, never exceptions. The message, notes and log tail are
    author text: NUL and lone surrogates in them become U+FFFD (``clean_text``). The output
    folder is a fresh temporary folder under ``work_dir`` (removed afterwards); with
    ``keep_output`` its predictions and model card are copied there first, and the job's log
    (stdout + stderr, as kept: ``RunLimits.log_max_kb``) is written there as ``log.txt``,
    whether the job passed or failed.
    """
    t0 = time.perf_counter()
    check = _OutputCheck(staged.task)
    scratch = Path(tempfile.mkdtemp(prefix="spared-job-", dir=work_dir))
    cleanup_notes: list[str] = []
    try:
        outcome = executor(staged.input_dir, scratch / "output", limits, gpus, check)
        if keep_output is not None:
            _keep(scratch / "output", keep_output, clean_text(outcome.log_tail))
    finally:
        try:
            remove_tree(scratch)  # any depth; a recursive delete would crash on a deep tree
        except OSError as error:
            log.warning("job folder %s could not be removed: %s", scratch, error)
            cleanup_notes.append(f"the job's scratch folder could not be removed "
                                 f"({error.strerror or error})")
    durations = outcome.durations
    timings = JobTimings(
        stage_s=stage_s, model_s=durations.run_s, validate_s=check.seconds,
        engine_s=max(0.0, durations.total_s - durations.run_s - check.seconds),
    )
    result = JobResult(
        submission=executor.submission, runner=executor.runner, purpose=staged.purpose,
        release_id=staged.release_id, dataset=staged.task.dataset, track=staged.task.track,
        status=outcome.status, message=clean_text(outcome.message), image_id=outcome.image_id,
        exit_code=outcome.exit_code, log_tail=clean_text(outcome.log_tail),
        holdout=staged.holdout, model_card=check.model_card,
        notes=[clean_text(n) for n in [*outcome.notes, *check.notes, *cleanup_notes]],
        timings=timings,
    )
    if outcome.succeeded and check.predictions is not None:
        t_score = time.perf_counter()
        try:
            truth = load_job_truth(staged)
            result.score = score_predictions(truth, check.predictions,
                                             release_id=staged.release_id)
        except BenchError as exc:
            result.status = "scoring_failed"
            result.message = clean_text(f"the output was valid but could not be scored: {exc}")
        timings.score_s = time.perf_counter() - t_score
    timings.total_s = stage_s + (time.perf_counter() - t0)
    return result


KEPT_LOG_FILE = "log.txt"
"""The job's log (stdout + stderr) beside the kept predictions (``check --keep-outputs``)."""


def _keep(output: Path, target: Path, log_tail: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in (PREDICTIONS_FILE, MODEL_CARD_FILE):
        source = output / name
        if source.is_file() and not source.is_symlink():
            shutil.copyfile(source, target / name)
    with atomic_path(target / KEPT_LOG_FILE) as tmp:
        tmp.write_text(log_tail, encoding="utf-8", errors="replace")


@dataclass(frozen=True)
class JobPlan:
    """One job to run: dataset and track of a release, for a purpose."""

    dataset: str
    track: Track


def plan_jobs(release: Release, datasets: Sequence[str] | None,
              tracks: Sequence[Track] | None) -> list[JobPlan]:
    """Every (dataset, track) to run: the given ones (default: all of the release).

    Raises ``BenchError`` for a dataset the release lacks or a track a named dataset lacks;
    with tracks not given, each dataset gets the tracks it has.
    """
    names = [release.dataset(d).name for d in datasets] if datasets else release.datasets
    plans = []
    for name in names:
        available = release.dataset(name).tracks
        for track in tracks or available:
            release.train_path(name, track)
            plans.append(JobPlan(name, track))
    return plans


def run_jobs(executor: Executor, release: Release, plans: Sequence[JobPlan], *,
             purpose: Purpose, settings: TaskSettings, limits: RunLimits, staging_root: Path,
             gpus: list[int] | None = None, work_dir: Path | None = None,
             keep_outputs: Path | None = None,
             on_result: Callable[[int, int, JobResult], None] | None = None,
             on_start: Callable[[int, int, JobPlan], None] | None = None) -> list[JobResult]:
    """Stage, run, validate and score every planned job, one after another.

    ``on_start(i, n, plan)`` and ``on_result(i, n, result)`` report progress (1-based ``i``).
    Once a job finds the image invalid (``image_invalid``: it cannot start), the remaining jobs
    are not run and get the same status.
    Staging errors propagate (they are the evaluator's problem, not the submission's).
    """
    # task.json promises the submission these limits: the runner enforces the same ones.
    limits = limits.model_copy(update={"timeout_s": settings.time_limit_s})
    if settings.limits is None:
        told = f"GPU {', '.join(map(str, gpus))}" if gpus else "none"
        settings = dataclasses.replace(settings, limits=limits.published(told))
    results: list[JobResult] = []
    invalid: JobResult | None = None
    for i, plan in enumerate(plans, start=1):
        if invalid is not None:
            # The image cannot start: every further job would fail the same way at once.
            skipped = invalid.model_copy(update={
                "dataset": plan.dataset, "track": plan.track, "holdout": "", "log_tail": "",
                "notes": [], "timings": JobTimings(),
                "message": (f"not run: the image is invalid (see {invalid.dataset}/"
                            f"{invalid.track})")})
            results.append(skipped)
            if on_result is not None:
                on_result(i, len(plans), skipped)
            continue
        if on_start is not None:
            on_start(i, len(plans), plan)
        t_stage = time.perf_counter()
        staged = stage_inputs(purpose, release, plan.dataset, plan.track, settings, staging_root)
        stage_s = time.perf_counter() - t_stage
        keep = keep_outputs / plan.dataset / plan.track if keep_outputs is not None else None
        result = run_staged_job(executor, staged, limits, gpus=gpus, work_dir=work_dir,
                                keep_output=keep, stage_s=stage_s)
        results.append(result)
        if result.status == "image_invalid":
            invalid = result
        if on_result is not None:
            on_result(i, len(plans), result)
    return results
