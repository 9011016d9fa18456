"""The orchestrator: queue (Huey), workers, intake, status, publishing and re-evaluation.

Service functions (``submit_image_archive``, ``register_image``, ``get_status``,
``publish_release``, ``reevaluate``, ``authenticate``) are what the CLI and the leaderboard's
API call; ``Worker`` consumes the queue. Importing this package imports neither docker nor
torch (the web app calls the service functions): the worker and the execution of jobs are
loaded on first use of ``Worker``, ``WorkerOptions``, ``execute_claim``, ``ExecutionReport`` or
``classify``.
"""

from __future__ import annotations

from typing import Any

from evaluator.orchestrator.auth import (
    add_worker_token,
    authenticate,
    authenticate_worker,
    create_team,
    ensure_team,
    hash_token,
    issue_token,
    list_worker_tokens,
    require_admin,
    revoke_token,
    revoke_worker_token,
)
from evaluator.orchestrator.errors import (
    AuthError,
    LimitExceeded,
    OrchestratorError,
    QueueUnavailable,
    QueueUrlError,
    RegistryNotConfigured,
    ServerUnavailable,
    SubmissionRejected,
    WrongTokenKind,
)
from evaluator.orchestrator.images import (
    REQUIRED_PLATFORM,
    ArchiveFacts,
    ImageFacts,
    ensure_image,
    read_archive,
)
from evaluator.orchestrator.queue import JobQueue, make_huey
from evaluator.orchestrator.service import (
    BASELINE_TEAM,
    Bench,
    JobView,
    PrecheckReport,
    PublishReport,
    ReevaluateReport,
    RegistryInfo,
    RerunReport,
    SubmissionReceipt,
    SubmissionStatus,
    WithdrawReport,
    check_links,
    get_status,
    precheck_submission,
    publish_release,
    queue_rerun,
    reevaluate,
    register_image,
    registry_info,
    registry_token,
    rerun,
    submit_image_archive,
    submit_registry_image,
    wait_for,
    withdraw,
)

_LAZY = {
    "Worker": "evaluator.orchestrator.worker",
    "WorkerOptions": "evaluator.orchestrator.worker",
    "ExecutionReport": "evaluator.orchestrator.execution",
    "classify": "evaluator.orchestrator.execution",
    "execute_claim": "evaluator.orchestrator.execution",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'evaluator.orchestrator' has no attribute {name!r}")

__all__ = [
    "BASELINE_TEAM",
    "REQUIRED_PLATFORM",
    "ArchiveFacts",
    "AuthError",
    "Bench",
    "ExecutionReport",
    "ImageFacts",
    "JobQueue",
    "JobView",
    "LimitExceeded",
    "OrchestratorError",
    "PrecheckReport",
    "PublishReport",
    "QueueUnavailable",
    "QueueUrlError",
    "ReevaluateReport",
    "RegistryInfo",
    "RegistryNotConfigured",
    "RerunReport",
    "ServerUnavailable",
    "SubmissionReceipt",
    "SubmissionRejected",
    "SubmissionStatus",
    "WithdrawReport",
    "Worker",
    "WorkerOptions",
    "WrongTokenKind",
    "add_worker_token",
    "authenticate",
    "authenticate_worker",
    "check_links",
    "classify",
    "create_team",
    "ensure_image",
    "ensure_team",
    "execute_claim",
    "get_status",
    "hash_token",
    "issue_token",
    "list_worker_tokens",
    "make_huey",
    "precheck_submission",
    "publish_release",
    "queue_rerun",
    "read_archive",
    "reevaluate",
    "register_image",
    "registry_info",
    "registry_token",
    "require_admin",
    "rerun",
    "revoke_token",
    "revoke_worker_token",
    "submit_image_archive",
    "submit_registry_image",
    "wait_for",
    "withdraw",
]
