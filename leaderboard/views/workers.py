"""What workers need of the service, and what admins see of the workers.

Worker endpoints (a worker token only: ``spared-bench workers add NAME``; a team's token is
refused with 403, no token or a revoked one with 401):

- ``GET /api/worker/me``: the token's worker name (a worker runs under that name).
- ``GET /api/worker/releases/<ref>`` answers the whole manifest of a published release (every
  file's sha256 and size, the hidden split's too: scoring needs the truth).
- ``GET /api/worker/registry-token?repository=REPO``: a pull-only registry token for the
  repository of the image of a job the worker is running (it pulls by digest with it).
- ``GET /api/worker/blobs/<sha256>`` serves one file of a published release by its content
  address (a hidden file, the truth, only to a worker running a job on its dataset: 403
  otherwise), with HTTP ranges (a fetch that stopped resumes) and the sha256 as ETag
  (``blobcache.BlobCache`` on the worker's side). Only blobs that a published release lists
  are reachable.

Admins (an admin team's token): ``GET /api/admin/workers`` lists the workers (host, GPUs,
current jobs, heartbeat age, jobs finished in the last hour); the page ``/admin/workers`` shows
the same after its form takes the token (checked, not stored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request

from evaluator.datasets.release import BLOBS_DIR, MANIFEST_NAME, ReleaseManifest
from evaluator.orchestrator.registry import TOKEN_TTL_S, RegistryTokenOut
from evaluator.orchestrator.service import worker_pull_token
from evaluator.store import (
    WorkersReport,
    held_datasets,
    list_release_records,
    list_workers,
    session_scope,
    utcnow,
)
from leaderboard.db import db, state, version
from leaderboard.errors import BadParameter, Forbidden, NotFoundError
from leaderboard.schemas import WorkerMeOut
from leaderboard.views.common import admin_team, authenticated_worker, team_for_token
from leaderboard.views.downloads import _published, send_release_file

workers = Blueprint("workers", __name__)

SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class _Blob:
    """Where a blob's content is, and who may read it: any worker when a published release
    lists it as a public file, else only a worker running a job on one of ``hidden_in``
    (release id, dataset)."""

    path: Path
    public: bool
    hidden_in: frozenset[tuple[str, str]]


def _blob_index() -> dict[str, _Blob]:
    """sha256 -> the blob, over every published release held here (cached per store version:
    publishing a release changes it)."""
    def build() -> dict[str, _Blob]:
        releases_dir = state().settings.releases_dir
        found: dict[str, tuple[Path, bool, set[tuple[str, str]]]] = {}
        for record in list_release_records(db()):
            root = releases_dir / record.release_id
            try:
                manifest = ReleaseManifest.model_validate_json(
                    (root / MANIFEST_NAME).read_bytes())
            except (OSError, ValueError):
                continue  # a release kept elsewhere: none of its blobs are served here
            for rel, entry in manifest.files.items():
                blob = releases_dir / BLOBS_DIR / entry.sha256[:2] / entry.sha256
                path, public, hidden_in = found.setdefault(
                    entry.sha256, (blob if blob.is_file() else root / rel, False, set()))
                parts = rel.split("/")
                if parts[0] == "hidden":
                    hidden_in.add((record.release_id, parts[1]))
                elif not public:
                    found[entry.sha256] = (path, True, hidden_in)
        return {sha: _Blob(path, public, frozenset(hidden_in))
                for sha, (path, public, hidden_in) in found.items()}

    return state().cache.get_or_compute(("worker-blobs", version()), build)


@workers.get("/api/worker/me")
def worker_me() -> Response:
    """The worker name of the token: the worker runs under it (its running jobs are what its
    token may read)."""
    response = jsonify(WorkerMeOut(name=authenticated_worker()).model_dump(mode="json"))
    response.headers["Cache-Control"] = "private, no-store"
    return response


@workers.get("/api/worker/releases/<ref>")
def worker_manifest(ref: str) -> Response:
    """A published release's whole manifest (hidden files included): worker tokens only."""
    authenticated_worker()
    _, manifest = _published(ref)
    response = jsonify(manifest.model_dump(mode="json"))
    response.headers["Cache-Control"] = "private, no-store"
    return response


@workers.get("/api/worker/blobs/<sha256>")
def worker_blob(sha256: str) -> Response:
    """One file of a published release by its sha256, whole or a byte range: workers only."""
    worker = authenticated_worker()
    if not SHA256_PATTERN.fullmatch(sha256):
        raise BadParameter("sha256", "64 lowercase hex digits", sha256[:80])
    blob = _blob_index().get(sha256)
    if blob is None:
        raise NotFoundError(f"blob {sha256[:12]}: expected the sha256 of a file of a published "
                            "release, found none")
    if not blob.public:
        with session_scope(state().engine) as session:
            held = held_datasets(session, worker)
        if not held & blob.hidden_in:
            # the hidden truth goes only where it is scored
            raise Forbidden(f"blob {sha256[:12]}: expected a hidden file of a dataset worker "
                            f"{worker!r} is running a job on, found none running there")
    response = send_release_file(blob.path, sha256, sha256, max_age_s=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@workers.get("/api/worker/registry-token")
def worker_registry_token() -> Response:
    """A pull-only registry token for the repository of a job the worker is running: workers
    only (a worker needs no registry key of its own); 403 for any other repository."""
    worker = authenticated_worker()
    repository = request.args.get("repository") or ""
    token = worker_pull_token(state().bench(), worker, repository)
    response = jsonify(RegistryTokenOut(token=token, access_token=token,
                                        expires_in=TOKEN_TTL_S,
                                        issued_at=utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
                       .model_dump(mode="json"))
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _report(lease_s: float) -> WorkersReport:
    with session_scope(state().engine) as session:
        return WorkersReport(workers=list_workers(session, lease_s=lease_s), lease_s=lease_s)


def _lease_s() -> float:
    raw = request.values.get("lease_s") or "60"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 86400:
        raise BadParameter("lease_s", "seconds between 1 and 86400", raw[:40])
    return value


@workers.get("/api/admin/workers")
def admin_workers() -> Response:
    """The workers, their hosts, GPUs, current jobs, heartbeat age and throughput: admins."""
    admin_team("list the workers")
    response = jsonify(_report(_lease_s()).model_dump(mode="json"))
    response.headers["Cache-Control"] = "private, no-store"
    return response


@workers.get("/admin/workers")
def workers_page() -> str:
    """The admins' workers page: a form asking for an admin token."""
    return render_template("pages/workers.html", page="workers", report=None, error=None)


@workers.post("/admin/workers")
def workers_page_admin() -> Any:
    """The workers page with the table, for the admin token of the form (not stored)."""
    token = (request.form.get("token") or "").strip()
    team = team_for_token(token)
    if not team.is_admin:
        raise Forbidden(f"list the workers: expected an admin token, found one of team "
                        f"{team.name!r}")
    return render_template("pages/workers.html", page="workers", report=_report(_lease_s()),
                           error=None, admin=team.name)
