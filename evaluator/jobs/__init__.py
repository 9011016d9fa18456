"""Jobs: stage inputs, run a submission, validate its output and score it (check and evaluate).

Layer: above ``runners`` and ``scoring`` (it uses both), below ``store`` and ``orchestrator``.
"""

from evaluator.jobs.errors import JobError, OutputError, StagingError
from evaluator.jobs.pipeline import (
    LOCAL_RUNNER_WARNING,
    DockerExecutor,
    Executor,
    JobPlan,
    JobResult,
    JobStatus,
    JobTimings,
    LocalExecutor,
    load_job_truth,
    plan_jobs,
    run_jobs,
    run_staged_job,
    validate_output,
)
from evaluator.jobs.report import JobsReport, results_table
from evaluator.jobs.staging import (
    Purpose,
    StagedInputs,
    TaskSettings,
    evaluation_task,
    make_writable,
    stage_evaluation_inputs,
    stage_inputs,
    stage_validation_inputs,
    task_key,
    validation_split,
)

__all__ = [
    "LOCAL_RUNNER_WARNING",
    "DockerExecutor",
    "Executor",
    "JobError",
    "JobPlan",
    "JobResult",
    "JobStatus",
    "JobTimings",
    "JobsReport",
    "LocalExecutor",
    "OutputError",
    "Purpose",
    "StagedInputs",
    "StagingError",
    "TaskSettings",
    "evaluation_task",
    "load_job_truth",
    "make_writable",
    "plan_jobs",
    "results_table",
    "run_jobs",
    "run_staged_job",
    "stage_evaluation_inputs",
    "stage_inputs",
    "stage_validation_inputs",
    "task_key",
    "validate_output",
    "validation_split",
]
