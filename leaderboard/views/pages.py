"""The HTML pages: leaderboard, entry (with its owner's job view), datasets, significance,
submission guide, API reference, and the health endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request
from markdown_it import MarkdownIt
from sqlalchemy.exc import SQLAlchemyError

from evaluator.contract import JobLimits
from evaluator.orchestrator import get_status, withdraw
from evaluator.orchestrator.estimates import TRIES_NOTE
from evaluator.orchestrator.registry import registry_host
from evaluator.store import current_release as stored_current
from leaderboard import data
from leaderboard.db import db, state, version
from leaderboard.errors import BadParameter, Forbidden, NotFoundError, Unauthorized, WebError
from leaderboard.filters import tissues
from leaderboard.openapi import openapi_document
from leaderboard.schemas import HealthOut
from leaderboard.views.common import (
    cached_response,
    current_release,
    current_view,
    public_url,
    team_for_token,
)

pages = Blueprint("pages", __name__)

HTML = "text/html; charset=utf-8"
# Package data (a link to submissions/CONTRACT.md in the repository, the file itself in a wheel)
CONTRACT_PATH = Path(__file__).resolve().parents[1] / "CONTRACT.md"


def _lazy_page(key: tuple[Any, ...], template: str, build: Any) -> Response:
    """Render a page once per (key, raw view parameters, store version)."""
    raw = tuple(request.args.get(k, "") for k in ("release", "track", "organism", "tissue",
                                                   "generalization", "genes"))
    return cached_response(("page", *key, raw),
                           lambda: (render_template(template, **build()).encode(), HTML),
                           max_age_s=15)


def _common() -> dict[str, Any]:
    return {"releases": state().cache.get_or_compute(("releases", version()),
                                                     lambda: data.releases(db())),
            "tissues": tissues()}


@pages.get("/")
def leaderboard() -> Response:
    """The ranked leaderboard of a release and track, with filters, plots and the legend."""
    view = current_view()

    def build() -> dict[str, Any]:
        board = state().board.leaderboard(db(), version(), view.release, view.track, view.filt)
        return {"board": board, "view": view, "page": "leaderboard", **_common()}

    return _lazy_page(("leaderboard", *view.key), "pages/leaderboard.html", build)


def _entry_context(submission_id: int, *, private: bool = False) -> dict[str, Any]:
    release = current_release()
    entry = state().board.entry(db(), version(), release, submission_id, private=private)
    return {"entry": entry, "release": release, "page": "entry", "owner": None,
            "limits": JobLimits.from_settings(state().settings), **_common()}


def _owner_team(submission_id: int) -> tuple[Any, Any, bool]:
    """The form's token's team, the entry and whether the team owns it (or is an admin).

    An entry that is not public (hidden, withdrawn) answers 404 unless the token is its own
    team's or an admin's, as its GET page does: nobody learns it exists."""
    token = (request.form.get("token") or "").strip()
    meta = data.get_entry(db(), submission_id, include_hidden=True)
    try:
        team = team_for_token(token)
    except (Unauthorized, Forbidden):
        if meta.public:
            raise
        team = None
    own = team is not None and (team.is_admin or team.id == meta.team_id)
    if team is None or (not meta.public and not own):
        raise NotFoundError(f"entry {submission_id}: expected the id of a published entry, "
                            "found none")
    return team, meta, own


@pages.get("/entries/<int:submission_id>")
def entry(submission_id: int) -> Response:
    """An entry: per-dataset metrics in both tracks, positions, the spackle effect, provenance."""
    release = current_release()
    return _lazy_page(("entry", release.release_id, submission_id), "pages/entry.html",
                      lambda: _entry_context(submission_id))


@pages.post("/entries/<int:submission_id>")
def entry_owner(submission_id: int) -> str:
    """The entry page with its owner's view: job statuses and capped log tails (the token is
    taken from the form, checked, and not stored)."""
    team, _meta, own = _owner_team(submission_id)
    return _owner_page(submission_id, team, own)


def _owner_page(submission_id: int, team: Any, own: bool, notice: str | None = None) -> str:
    """The entry page with the owner's part filled in for ``team``."""
    context = _entry_context(submission_id, private=own)
    owner: dict[str, Any] = {"team": team.name, "own": own, "jobs": [],
                             "admin": bool(team.is_admin), "notice": notice}
    if own:
        status = get_status(state().bench(), submission_id, by=team, logs=True)
        cap = state().config.log_cap_bytes
        for job in status.jobs:
            tail = job.log_tail or ""
            cut = len(tail.encode()) > cap
            if cut:
                tail = tail.encode()[-cap:].decode(errors="replace")
            owner["jobs"].append({"job": job, "log": tail, "cut": cut})
        owner["counts"] = status.counts
        owner["left"] = status.submissions_left_today
        owner["team_of_entry"] = status.team
        owner["eta_method"] = status.eta_method
        owner["tries_note"] = TRIES_NOTE
    context["owner"] = owner
    return render_template("pages/entry.html", **context)


@pages.post("/entries/<int:submission_id>/withdraw")
def entry_withdraw(submission_id: int) -> str:
    """Withdraw this version or every version of the entry (its team or an admin; the token
    is taken from the form, checked, not stored); an admin may put it back
    (``action=restore``). Answers the owner's view of the page."""
    team, meta, own = _owner_team(submission_id)
    if not own:
        raise Forbidden(f"entry {meta.label}: expected a token of its own team or an admin, "
                        f"found one of team {team.name!r}")
    scope = request.form.get("scope") or "version"
    action = request.form.get("action") or "withdraw"
    if scope not in ("version", "all"):
        raise BadParameter("scope", "version or all", scope)
    if action not in ("withdraw", "restore"):
        raise BadParameter("action", "withdraw or restore", action)
    report = withdraw(state().bench(), submission_id,
                      version=meta.version if scope == "version" else None, by=team,
                      withdrawn=action == "withdraw")
    state().cache.clear()
    return _owner_page(submission_id, team, own, notice=report.message)


@pages.get("/datasets")
def datasets() -> Response:
    """The 26 datasets: facts, and the best entry and best PCC (difficulty) per track."""
    release = current_release()

    def build() -> dict[str, Any]:
        out = state().board.datasets(db(), version(), release)
        return {"datasets": out, "release": release, "page": "datasets", **_common()}

    return _lazy_page(("datasets", release.release_id), "pages/datasets.html", build)


@pages.get("/datasets/<name>")
def dataset(name: str) -> Response:
    """A dataset: registry facts, best entry, difficulty and every entry's scores."""
    release = current_release()

    def build() -> dict[str, Any]:
        out = state().board.dataset(db(), version(), release, name)
        return {"dataset": out, "release": release, "page": "datasets", **_common()}

    return _lazy_page(("dataset", release.release_id, name), "pages/dataset.html", build)


@pages.get("/significance")
def significance() -> Response:
    """Dunn p-value matrix (paper Table 3), Kruskal–Wallis, groups and the CD diagram."""
    view = current_view()

    def build() -> dict[str, Any]:
        board = state().board
        report = board.significance(db(), version(), view.release, view.track, view.filt)
        ranks = board.leaderboard(db(), version(), view.release, view.track, view.filt)
        return {"sig": report, "board": ranks, "view": view, "page": "significance",
                **_common()}

    return _lazy_page(("significance", *view.key), "pages/significance.html", build)


def contract_html() -> str | None:
    """The predict contract (``submissions/CONTRACT.md``, shipped as package data) as HTML.

    None only when the file is missing from an installation (the page then says so).
    """
    if not CONTRACT_PATH.is_file():
        return None
    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    return renderer.render(CONTRACT_PATH.read_text(encoding="utf-8"))


@pages.get("/guide")
def guide() -> Response:
    """How to submit: the predict contract, then `check` and `submit`."""
    def build() -> dict[str, Any]:
        return {"contract": contract_html(), "page": "guide",
                "server": public_url() or "SERVER_URL",
                "max_upload_mb": state().max_upload_bytes / 2**20,
                "count_keys": data.PARAMETER_COUNT_KEYS,
                "daily_submissions": state().settings.daily_submissions,
                "registry": registry_host(state().settings.registry_url or ""),
                "limits": JobLimits.from_settings(state().settings), **_common()}

    return cached_response(("page", "guide"),
                           lambda: (render_template("pages/guide.html", **build()).encode(),
                                    HTML), max_age_s=300)


@pages.get("/api")
def api_reference() -> Response:
    """The API's endpoints, from the OpenAPI document."""
    def build() -> dict[str, Any]:
        return {"doc": openapi_document(public_url() or "/"), "page": "api", **_common()}

    return cached_response(("page", "api"),
                           lambda: (render_template("pages/api.html", **build()).encode(),
                                    HTML), max_age_s=300)


@pages.get("/healthz")
def health() -> Response:
    """``{"status": "ok", "current_release": ...}`` when the database answers, else 503."""
    try:
        record = stored_current(db())
    except SQLAlchemyError as error:
        raise WebError(f"expected the results database to answer, found "
                       f"{type(error).__name__}", status=503) from error
    return jsonify(HealthOut(status="ok", current_release=record.release_id if record else None)
                   .model_dump(mode="json"))
