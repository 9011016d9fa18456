"""The orchestrator: queue (Huey), workers, intake, status, publishing and re-evaluation.

Service functions (``submit_image_archive``, ``register_image``, ``get_status``,
``publish_release``, ``reevaluate``, ``authenticate``) are what the CLI and the leaderboard's
API call; this package exports them. The worker, which runs jobs in containers and needs the
worker extra (docker), is not exported here: import it from its modules,
``evaluator.orchestrator.worker`` (``Worker``, ``WorkerOptions``) and
``evaluator.orchestrator.execution`` (``execute_claim``, ``ExecutionReport``, ``classify``).
Importing this package imports neither docker nor torch (the web app calls the service
functions; ``tests/leaderboard/test_isolation.py``).
"""

from __future__ import annotations

from evaluator.orchestrator.auth import (
    authenticate,
    create_team,
    ensure_team,
    hash_token,
    issue_token,
    require_admin,
    revoke_token,
)
from evaluator.orchestrator.errors import (
    AuthError,
    LimitExceeded,
    OrchestratorError,
    QueueUnavailable,
    QueueUrlError,
    ServerUnavailable,
    SubmissionRejected,
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
    PublishReport,
    ReevaluateReport,
    RerunReport,
    SubmissionReceipt,
    SubmissionStatus,
    WithdrawReport,
    check_links,
    get_status,
    publish_release,
    queue_rerun,
    reevaluate,
    register_image,
    rerun,
    submit_image_archive,
    wait_for,
    withdraw,
)

__all__ = [
    "BASELINE_TEAM",
    "REQUIRED_PLATFORM",
    "ArchiveFacts",
    "AuthError",
    "Bench",
    "ImageFacts",
    "JobQueue",
    "JobView",
    "LimitExceeded",
    "OrchestratorError",
    "PublishReport",
    "QueueUnavailable",
    "QueueUrlError",
    "ReevaluateReport",
    "RerunReport",
    "ServerUnavailable",
    "SubmissionReceipt",
    "SubmissionRejected",
    "SubmissionStatus",
    "WithdrawReport",
    "authenticate",
    "check_links",
    "create_team",
    "ensure_image",
    "ensure_team",
    "get_status",
    "hash_token",
    "issue_token",
    "make_huey",
    "publish_release",
    "queue_rerun",
    "read_archive",
    "reevaluate",
    "register_image",
    "require_admin",
    "rerun",
    "revoke_token",
    "submit_image_archive",
    "wait_for",
    "withdraw",
]
