"""The JSON/CSV API: everything the pages show, the OpenAPI document, submissions (bearer
token, streamed ``docker save`` archive, size-limited) and admin actions (admin teams only).

Errors are ``{"error": "...", "status": N}`` with the matching HTTP status.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel

from evaluator.core.links import LINK_FIELDS, link_problem
from evaluator.core.text import clean_text, name_problem
from evaluator.core.vocabulary import INTERVAL_COLUMNS
from evaluator.orchestrator import (
    get_status,
    publish_release,
    reevaluate,
    rerun,
    submit_image_archive,
    withdraw,
)
from evaluator.orchestrator.registry import SERVICE as REGISTRY_SERVICE
from evaluator.orchestrator.registry import TOKEN_TTL_S, RegistryTokenOut
from evaluator.orchestrator.service import (
    precheck_submission,
    registry_info,
    registry_token,
    submit_registry_image,
)
from evaluator.store import session_scope, utcnow
from leaderboard import data
from leaderboard.board import release_out
from leaderboard.db import db, state, version
from leaderboard.errors import BadParameter, PayloadTooLarge, Unauthorized
from leaderboard.openapi import openapi_document
from leaderboard.schemas import (
    DatasetScoreOut,
    EntryDatasetOut,
    HideIn,
    HideOut,
    PublishIn,
    ReevaluateIn,
    ReleasesOut,
    RerunIn,
    ResultRowOut,
    WithdrawIn,
)
from leaderboard.views.common import (
    admin_team,
    authenticated_team,
    bearer_token,
    cached_response,
    csv_bytes,
    current_release,
    current_view,
    json_body,
    model_json,
    output_format,
    public_url,
    team_for_token,
)

api = Blueprint("api", __name__, url_prefix="/api")

CHUNK_BYTES = 1 << 20
JSON = "application/json"
CSV = "text/csv"


def _columns(model: type[BaseModel]) -> tuple[str, ...]:
    """A response model's fields as CSV columns, the interval columns last."""
    fields = tuple(model.model_fields)
    return (*(f for f in fields if f not in INTERVAL_COLUMNS),
            *(f for f in fields if f in INTERVAL_COLUMNS))


LEADERBOARD_COLUMNS = ("rank", "rank_low", "rank_high", "group", "entry", "submission_id", "team",
                       "name", "version", "is_baseline", "mean_normalized_mse",
                       "mean_normalized_mse_low", "mean_normalized_mse_high",
                       "std_normalized_mse", "skill", "skill_low",
                       "skill_high", "mean_mse", "mean_pcc_gene", "datasets_won",
                       "parameter_count", "submitted_at", "complete", "reason")
ENTRY_COLUMNS = _columns(EntryDatasetOut)
DATASET_COLUMNS = _columns(DatasetScoreOut)
DATASETS_COLUMNS = ("name", "abbreviation", "organism", "tissue", "generalization", "genes",
                    "slides", "patients", "spots", "missing_before_pct", "missing_after_pct",
                    "hidden_split", "in_release", "track", "n_entries", "best_entry", "best_mse",
                    "best_pcc_entry", "best_pcc_gene")
PAIR_COLUMNS = ("a", "b", "n", "statistic", "p_value", "p_holm", "significant", "method",
                "median_difference", "rank_biserial")
RESULT_COLUMNS = _columns(ResultRowOut)


def _json_or_csv(key: tuple[Any, ...], model: Any, rows: Any, columns: tuple[str, ...],
                 filename: str) -> Response:
    if output_format() == "csv":
        return cached_response(("csv", *key), lambda: (csv_bytes(rows(), columns), CSV),
                               filename=filename)
    return cached_response(("json", *key), lambda: (model_json(model()), JSON))


@api.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of this API."""
    return cached_response(("openapi",),
                           lambda: (_dumps(openapi_document(public_url() or "/")), JSON),
                           max_age_s=300)


def _dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=1).encode()


@api.get("/releases")
def releases() -> Response:
    """Every published release, newest first."""
    def model() -> ReleasesOut:
        return ReleasesOut(releases=[release_out(r) for r in data.releases(db())])

    def rows() -> list[dict[str, Any]]:
        return [r.model_dump() for r in model().releases]

    return _json_or_csv(("releases",), model, rows,
                        ("release_id", "label", "is_current", "published_at", "created_at",
                         "datasets", "tracks"), "releases.csv")


@api.get("/leaderboard")
def leaderboard() -> Response:
    """The ranked leaderboard of a release, track and dataset filter."""
    view = current_view()
    board = state().board

    def model() -> Any:
        return board.leaderboard(db(), version(), view.release, view.track, view.filt)

    def rows() -> list[dict[str, Any]]:
        out = model()
        ranked = [{**e.model_dump(), "complete": True, "reason": ""} for e in out.entries]
        missing = [{**e.model_dump(), "complete": False} for e in out.incomplete]
        return ranked + missing

    return _json_or_csv(("leaderboard", *view.key), model, rows, LEADERBOARD_COLUMNS,
                        f"leaderboard-{view.release.short}-{view.track}.csv")


@api.get("/significance")
def significance() -> Response:
    """Kruskal–Wallis, the Dunn p-value matrix, groups and Friedman/Nemenyi of a leaderboard.

    CSV: the Dunn matrix (first column the entry, then one column per entry); with
    ``test=wilcoxon``, the paired Wilcoxon tests (one row per pair, Holm-adjusted, effect sizes).
    """
    view = current_view()
    board = state().board

    def model() -> Any:
        return board.significance(db(), version(), view.release, view.track, view.filt)

    out_format = output_format()
    test = request.args.get("test", "dunn")
    if test not in ("dunn", "wilcoxon"):
        raise BadParameter("test", "dunn or wilcoxon", test)
    if out_format == "csv" and test == "wilcoxon":
        def pairs() -> tuple[bytes, str]:
            rows = [p.model_dump() for p in model().wilcoxon or []]
            return csv_bytes(rows, PAIR_COLUMNS), CSV

        return cached_response(("csv", "wilcoxon", *view.key), pairs,
                               filename=f"wilcoxon-{view.release.short}-{view.track}.csv")
    if out_format == "csv":
        def build() -> tuple[bytes, str]:
            report = model()
            labels = report.dunn.labels if report.dunn else []
            rows = [{"entry": a, **{b: report.dunn.p_values[i][j] for j, b in enumerate(labels)}}
                    for i, a in enumerate(labels)] if report.dunn else []
            return csv_bytes(rows, ("entry", *labels)), CSV

        return cached_response(("csv", "significance", *view.key), build,
                               filename=f"dunn-{view.release.short}-{view.track}.csv")
    return cached_response(("json", "significance", *view.key),
                           lambda: (model_json(model()), JSON))


@api.get("/entries/<int:submission_id>")
def entry(submission_id: int) -> Response:
    """An entry: per-dataset results in both tracks, standings, image digest, provenance."""
    release = current_release()
    board = state().board

    def model() -> Any:
        return board.entry(db(), version(), release, submission_id)

    def rows() -> list[dict[str, Any]]:
        return [r.model_dump() for r in model().results]

    return _json_or_csv(("entry", release.release_id, submission_id), model, rows,
                        ENTRY_COLUMNS, f"entry-{submission_id}-{release.short}.csv")


@api.get("/datasets")
def datasets() -> Response:
    """The 26 datasets: registry facts and, per track, the best entry and best PCC-Gene."""
    release = current_release()
    board = state().board

    def model() -> Any:
        return board.datasets(db(), version(), release)

    def rows() -> list[dict[str, Any]]:
        out = []
        for item in model().datasets:
            facts = item.facts.model_dump()
            for summary in item.tracks or [None]:
                out.append({**facts, "in_release": item.in_release,
                            **(summary.model_dump() if summary else {})})
        return out

    return _json_or_csv(("datasets", release.release_id), model, rows, DATASETS_COLUMNS,
                        f"datasets-{release.short}.csv")


@api.get("/datasets/<name>")
def dataset(name: str) -> Response:
    """A dataset: facts, best entry and difficulty per track, every entry's scores."""
    release = current_release()
    board = state().board

    def model() -> Any:
        return board.dataset(db(), version(), release, name)

    def rows() -> list[dict[str, Any]]:
        return [s.model_dump() for s in model().scores]

    return _json_or_csv(("dataset", release.release_id, name), model, rows, DATASET_COLUMNS,
                        f"dataset-{name}-{release.short}.csv")


@api.get("/results")
def results() -> Response:
    """The long results table (entry x dataset, every metric) of a release and track."""
    view = current_view()
    board = state().board

    def model() -> Any:
        return board.results(db(), version(), view.release, view.track)

    def rows() -> list[dict[str, Any]]:
        return [r.model_dump() for r in model().rows]

    return _json_or_csv(("results", view.release.release_id, view.track), model, rows,
                        RESULT_COLUMNS, f"results-{view.release.short}-{view.track}.csv")


# -- submissions --------------------------------------------------------------------------------


def _limited_chunks(stream: IO[bytes], max_bytes: int) -> Iterator[bytes]:
    """Read the upload in chunks, refusing it (413) as soon as it passes ``max_bytes``."""
    total = 0
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            return
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(f"image archive: expected at most {max_bytes / 2**20:.4g} MB, "
                                  f"found more (stopped reading at {total / 2**20:.4g} MB)")
        yield chunk


def _submission_name() -> tuple[str, str]:
    name = (request.args.get("name") or "").strip()
    if not name or len(name) > 100 or "/" in name:
        raise BadParameter("name", "1-100 characters without '/'", name)
    problem = name_problem(name)
    if problem is not None:
        raise BadParameter("name", problem.removeprefix("expected "), name)
    description = request.args.get("description") or ""
    if len(description) > 10_000:
        raise BadParameter("description", "at most 10000 characters",
                           f"{len(description)} characters")
    if clean_text(description) != description:
        raise BadParameter("description", "text without NUL characters or lone surrogates",
                           "some")
    return name, description


def _submission_links() -> dict[str, str | None]:
    """``paper_url`` and ``code_url`` from the query: http(s), printable, length-limited."""
    links: dict[str, str | None] = {}
    for field in LINK_FIELDS:
        value = (request.args.get(field) or "").strip() or None
        problem = link_problem(value) if value is not None else None
        if problem is not None:
            raise BadParameter(field, problem.removeprefix("expected ").split(", found")[0],
                               value)
        links[field] = value
    return links


@api.post("/submissions")
def submit() -> tuple[Response, int]:
    """Take a submission of the token's team: with ``?image=REGISTRY/REPO@sha256:...`` an
    image pushed to the service's registry (no body), else a ``docker save`` archive (the
    body, streamed).

    Answers 201 with the receipt; 401 without a valid token, 400 for a bad name, 404 for
    ``image`` without a registry, 413 past the upload limit, 422 for an image that is not one
    linux/amd64 image, is outside the team's namespace or was submitted before, 429 over the
    team's daily limit.
    """
    team = authenticated_team()
    name, description = _submission_name()
    links = _submission_links()
    app_state = state()
    if (image := request.args.get("image")) is not None:
        receipt = submit_registry_image(app_state.bench(), image, name=name,
                                        description=description, by=team,
                                        paper_url=links["paper_url"],
                                        code_url=links["code_url"])
        return jsonify(receipt.model_dump(mode="json")), 201
    limit = app_state.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"image archive: expected at most {limit / 2**20:.4g} MB, found "
                              f"Content-Length {request.content_length / 2**20:.4g} MB")
    request.max_content_length = limit
    receipt = submit_image_archive(app_state.bench(), _limited_chunks(request.stream, limit),
                                   name=name, description=description, by=team, load=False,
                                   paper_url=links["paper_url"], code_url=links["code_url"])
    return jsonify(receipt.model_dump(mode="json")), 201


@api.get("/submissions/precheck")
def submission_precheck() -> Response:
    """Say whether image ``image_id`` (``sha256:`` of its config) under ``name`` would be
    accepted, before any upload: 422 for an image submitted before or a bad name, 429 over
    the daily limit; else the version it would make and the submissions left today."""
    team = authenticated_team()
    name, _ = _submission_name()
    report = precheck_submission(state().bench(), name=name,
                                 image_id=request.args.get("image_id") or "", by=team)
    return jsonify(report.model_dump(mode="json"))


# -- registry -----------------------------------------------------------------------------------


@api.get("/registry")
def registry() -> Response:
    """Where the token's team pushes images: the registry, its namespace, the commands
    (404 when the service has no registry)."""
    team = authenticated_team()
    return jsonify(registry_info(state().bench(), team).model_dump(mode="json"))


@api.get("/registry/token")
def registry_token_realm() -> Response:
    """The registry's token realm (Docker's token authentication): HTTP Basic with any user
    name and the team token as password; answers a short-lived token granting the asked
    ``scope``s within the team's namespace (pull and push) and nothing else."""
    service = request.args.get("service")
    if service != REGISTRY_SERVICE:
        raise BadParameter("service", REGISTRY_SERVICE, service)
    auth = request.authorization
    secret = auth.password if auth is not None and auth.type == "basic" else bearer_token()
    try:
        team = team_for_token(secret or None)
    except Unauthorized as error:
        error.headers = {"WWW-Authenticate": 'Basic realm="spared-bench registry"'}
        raise
    token = registry_token(state().bench(), team, request.args.getlist("scope"))
    return jsonify(RegistryTokenOut(token=token, access_token=token, expires_in=TOKEN_TTL_S,
                                    issued_at=utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
                   .model_dump(mode="json"))


@api.get("/submissions/<int:submission_id>")
def submission_status(submission_id: int) -> Response:
    """A submission's jobs and results; job logs only for its own team and admins (403 for
    another team's hidden entry)."""
    return _status_response(submission_id)


@api.get("/submissions/<team>/<name>")
def entry_status(team: str, name: str) -> Response:
    """The newest version of the entry TEAM/NAME, as ``submission_status`` shows it."""
    return _status_response(f"{team}/{name}")


def _status_response(ref: int | str) -> Response:
    team = authenticated_team()
    status = get_status(state().bench(), ref, by=team, logs=True)
    cap = state().config.log_cap_bytes
    for job in status.jobs:
        if job.log_tail and len(job.log_tail.encode()) > cap:
            job.log_tail = "[… earlier output cut]\n" + \
                job.log_tail.encode()[-cap:].decode(errors="replace")
    return jsonify(status.model_dump(mode="json"))


@api.post("/withdrawals")
def withdrawal() -> Response:
    """Withdraw an entry of the token's team (every version, or one) from the leaderboard and
    the public pages; ``{"withdrawn": false}`` puts it back (admins only). 403 for another
    team's entry."""
    team = authenticated_team()
    body: WithdrawIn = _body(WithdrawIn)
    report = withdraw(state().bench(), body.entry, version=body.version, by=team,
                      withdrawn=body.withdrawn)
    state().cache.clear()
    return jsonify(report.model_dump(mode="json"))


# -- admin --------------------------------------------------------------------------------------


@api.post("/admin/reevaluate")
def admin_reevaluate() -> Response:
    """Queue entries on a published release again (one submission, all, or the baselines)."""
    team = admin_team("re-evaluate")
    body: ReevaluateIn = _body(ReevaluateIn)
    chosen = sum([body.submission is not None, body.all, body.baselines])
    if chosen != 1:
        raise BadParameter("body", "exactly one of submission, all, baselines",
                           f"{chosen} of them")
    report = reevaluate(state().bench(), body.release, submission=body.submission,
                        all_entries=body.all, baselines_only=body.baselines, by=team,
                        retry_failed=body.retry_failed)
    return jsonify(report.model_dump(mode="json"))


@api.post("/admin/rerun")
def admin_rerun() -> Response:
    """Re-run an entry's jobs on a release (same image digest) to check it is reproducible."""
    team = admin_team("re-run an entry")
    body: RerunIn = _body(RerunIn)
    report = rerun(state().bench(), body.submission, release_ref=body.release, by=team)
    return jsonify(report.model_dump(mode="json"))


@api.post("/admin/entries/<int:submission_id>/hide")
def admin_hide(submission_id: int) -> Response:
    """Hide an entry from every public view (``{"hidden": false}`` shows it again)."""
    admin_team("hide an entry")
    body: HideIn = _body(HideIn)
    with session_scope(state().engine) as session:
        meta = data.set_hidden(session, submission_id, body.hidden)
    state().cache.clear()
    return jsonify(HideOut(submission_id=submission_id, entry=meta.label,
                           hidden=meta.hidden).model_dump(mode="json"))


@api.post("/admin/releases")
def admin_publish() -> Response:
    """Publish a built release (make it current) and queue the baselines on it."""
    team = admin_team("publish a release")
    body: PublishIn = _body(PublishIn)
    report = publish_release(state().bench(), body.release, by=team,
                             queue_baselines=body.queue_baselines)
    state().cache.clear()
    return jsonify(report.model_dump(mode="json"))


def _body(model: Any) -> Any:
    return json_body(model)

