"""Errors of the orchestrator: queue, intake, authentication and limits."""

from __future__ import annotations

from evaluator.core.errors import BenchError


class OrchestratorError(BenchError):
    """Base of the orchestrator's errors."""


class QueueUrlError(OrchestratorError):
    """A ``QUEUE_URL`` the queue cannot use."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        super().__init__(f"QUEUE_URL {url}: {problem}")


class QueueUnavailable(OrchestratorError):
    """The queue (Redis) did not accept a message."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"expected the job queue {url} to accept jobs, found it unreachable "
                         f"({detail}); the jobs stay queued in the database and a worker "
                         "re-enqueues them once the queue is back")


class AuthError(OrchestratorError):
    """A token that is missing, unknown or revoked, or a team without the right."""


class WrongTokenKind(AuthError):
    """A valid-looking token of the other kind: a worker's at a team endpoint, or a team's at a
    worker endpoint (answered 403)."""


class SubmissionRejected(OrchestratorError):
    """A submission refused on intake: not an image, too big, wrong platform, duplicate."""


class RegistryNotConfigured(OrchestratorError):
    """The service has no submission registry (``SPARED_BENCH_REGISTRY_URL`` unset)."""

    def __init__(self) -> None:
        super().__init__("registry: expected this service to have a submission registry "
                         "(SPARED_BENCH_REGISTRY_URL), found none; upload a `docker save` "
                         "archive instead (`spared-bench submit IMAGE --archive`)")


class LimitExceeded(OrchestratorError):
    """A team over its daily submission limit."""

    def __init__(self, team: str, limit: int, used: int) -> None:
        self.team = team
        self.limit = limit
        self.used = used
        super().__init__(f"team {team!r}: expected at most {limit} submission(s) per UTC day, "
                         f"found {used} already today; try again after midnight UTC")


class ServerUnavailable(OrchestratorError):
    """The leaderboard server named by ``--server`` did not answer or refused the request."""
