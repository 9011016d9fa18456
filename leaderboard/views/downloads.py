"""What authors need to reproduce a service's runs: its job limits, its public release data.

``GET /api/limits`` answers the limits every job runs under (``check --server`` uses them).

``GET /api/releases/<ref>/public`` answers the manifest of an author's copy (``partial``: the
training data of every dataset, with sha256 and size); ``GET /api/releases/<ref>/files/<path>``
serves one of those files, with HTTP ranges (a pull that stopped resumes where it stopped) and
the file's sha256 as its ETag. Nothing else of the release store is reachable: only the paths
the manifest lists (never the hidden split), read-rate limited like every read.

``GET /api/predictions?submission=<id or TEAM/NAME>`` lists an entry's kept hidden-split
predictions (one per result) and ``GET /api/predictions/<result_id>`` serves one as ``.npy``
(the array's SHA-256 as ETag and ``X-Content-SHA256``): the owning team's or an admin's bearer
token only (401 without one, 403 for another team's public entry, 404 for a hidden one).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, jsonify, request, send_file

from evaluator.contract import JobLimits
from evaluator.core.errors import BenchError
from evaluator.datasets.release import (
    MANIFEST_NAME,
    ReleaseManifest,
    check_files,
    partial_manifest,
)
from evaluator.orchestrator.predictions import list_predictions, prediction_file
from leaderboard import data
from leaderboard.db import db, state
from leaderboard.errors import BadParameter, NotFoundError
from leaderboard.views.common import authenticated_team

downloads = Blueprint("downloads", __name__, url_prefix="/api")


def _published(ref: str) -> tuple[Path, ReleaseManifest]:
    """The folder and manifest of a published release whose files this server holds."""
    info = data.resolve_release(db(), ref)
    root = state().settings.releases_dir / info.release_id
    try:
        manifest = ReleaseManifest.model_validate_json((root / MANIFEST_NAME).read_bytes())
    except (OSError, ValueError) as error:
        raise NotFoundError(f"release {info.release_id[:12]}: expected its files on this "
                            "server, found none (the service keeps them elsewhere)") from error
    return root, manifest


@downloads.get("/limits")
def limits() -> Response:
    """The limits every job of this service runs under (the service's settings)."""
    return jsonify(JobLimits.from_settings(state().settings).model_dump(mode="json"))


@downloads.get("/releases/<ref>/public")
def public_manifest(ref: str) -> Response:
    """The manifest of the files an author pulls to run ``check`` (training data only)."""
    _, manifest = _published(ref)
    return jsonify(partial_manifest(manifest).model_dump(mode="json"))


@downloads.get("/releases/<ref>/files/<path:rel>")
def public_file(ref: str, rel: str) -> Response:
    """One file of ``public_manifest``, whole or a byte range (resumable)."""
    root, manifest = _published(ref)
    entry = check_files(manifest).get(rel)
    if entry is None:
        raise NotFoundError(f"{rel[:200]!r}: expected a file listed by "
                            f"/api/releases/{manifest.release_id[:12]}/public, found none")
    return send_release_file(root / rel, entry.sha256, rel)


def send_release_file(path: Path, sha256: str, name: str, *, max_age_s: int = 3600) -> Response:
    """A release file (or blob) whole or as the byte range asked for (``Range``), its sha256
    as ETag and ``X-Content-SHA256``; ``If-None-Match`` answers 304. Shared by the authors'
    ``data pull`` files and the workers' blobs."""
    try:
        response = send_file(path, mimetype="application/octet-stream", conditional=True,
                             etag=sha256, max_age=max_age_s, download_name=Path(name).name)
    except OSError as error:
        raise BenchError(f"{name}: expected the release file on this server, found it "
                         f"unreadable ({type(error).__name__})") from error
    response.headers["X-Content-SHA256"] = sha256
    return response


@downloads.get("/predictions")
def predictions_list() -> Response:
    """An entry's kept predictions on the hidden split; its own team and admins only."""
    team = authenticated_team()
    ref = (request.args.get("submission") or "").strip()
    if not ref:
        raise BadParameter("submission", "an id such as 12 or TEAM/NAME", "nothing")
    files = list_predictions(state().bench(), ref, by=team)
    return jsonify([f.model_dump(mode="json") for f in files])


@downloads.get("/predictions/<int:result_id>")
def predictions_file(result_id: int) -> Response:
    """One result's predictions as ``.npy`` (float32, rows in test.h5ad order); owners only."""
    team = authenticated_team()
    entry, path = prediction_file(state().bench(), result_id, by=team)
    name = f"{entry.submission_id}-{entry.dataset}-{entry.track}-run{entry.run}.npy"
    response = send_file(path, mimetype="application/octet-stream", conditional=True,
                         etag=entry.sha256, max_age=0, download_name=name)
    response.headers["X-Content-SHA256"] = entry.sha256
    response.headers["Cache-Control"] = "private, no-store"
    return response
