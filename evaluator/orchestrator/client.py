"""Client side of the leaderboard server's submission API (``--server URL``).

The API (served by the leaderboard web app):
- ``POST <URL>/api/submissions?name=N&description=D`` with ``Authorization: Bearer TOKEN`` and
  the ``docker save`` archive as the body (``Content-Type: application/x-tar``, streamed,
  chunked). Answers 201 with a ``SubmissionReceipt`` as JSON; 4xx with ``{"error": "..."}``.
- ``GET <URL>/api/submissions/<id>`` (bearer token) answers a ``SubmissionStatus`` as JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from evaluator.orchestrator.errors import ServerUnavailable
from evaluator.orchestrator.service import SubmissionReceipt, SubmissionStatus

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0


def _error(url: str, response: Any) -> ServerUnavailable:
    try:
        detail = response.json().get("error") or response.text[:300]
    except ValueError:
        detail = response.text[:300] or response.reason
    return ServerUnavailable(f"server {url}: expected success, found HTTP "
                             f"{response.status_code}: {detail}")


def _request(method: str, url: str, **kwargs: Any) -> Any:
    import requests

    try:
        return requests.request(method, url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                                **kwargs)
    except requests.exceptions.RequestException as error:
        raise ServerUnavailable(
            f"server {url}: expected the leaderboard web app to answer, found no answer "
            f"({type(error).__name__}); check --server (is the web app running?)") from error


def post_submission(server: str, token: str, chunks: Iterable[bytes], *, name: str,
                    description: str = "") -> SubmissionReceipt:
    """Stream an image archive to the server; raises ``ServerUnavailable`` with its answer."""
    url = server.rstrip("/") + "/api/submissions"
    response = _request("POST", url, params={"name": name, "description": description},
                        data=iter(chunks),
                        headers={"Authorization": f"Bearer {token}",
                                 "Content-Type": "application/x-tar"})
    if response.status_code not in (200, 201):
        raise _error(url, response)
    return SubmissionReceipt.model_validate(response.json())


def get_submission_status(server: str, token: str, submission: str | int) -> SubmissionStatus:
    """A submission's status from the server; raises ``ServerUnavailable``."""
    url = f"{server.rstrip('/')}/api/submissions/{str(submission).lstrip('#')}"
    response = _request("GET", url, headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 200:
        raise _error(url, response)
    return SubmissionStatus.model_validate(response.json())
