"""The OpenAPI 3.1 document of the API, built from the pydantic response and request models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from evaluator.contract import JobLimits
from evaluator.core.vocabulary import TRACKS
from evaluator.datasets.release import ReleaseManifest
from evaluator.orchestrator.predictions import PredictionFile
from evaluator.orchestrator.registry import SERVICE as REGISTRY_SERVICE
from evaluator.orchestrator.registry import RegistryTokenOut
from evaluator.orchestrator.service import (
    PrecheckReport,
    PublishReport,
    ReevaluateReport,
    RegistryInfo,
    RerunReport,
    SubmissionReceipt,
    SubmissionStatus,
    WithdrawReport,
)
from evaluator.store import WorkersReport
from leaderboard.filters import tissues
from leaderboard.schemas import (
    DatasetOut,
    DatasetsOut,
    EntryOut,
    ErrorOut,
    HealthOut,
    HideIn,
    HideOut,
    LeaderboardOut,
    PublishIn,
    ReevaluateIn,
    ReleasesOut,
    RerunIn,
    ResultsOut,
    SignificanceOut,
    WithdrawIn,
    WorkerMeOut,
)

MODELS: tuple[type[BaseModel], ...] = (
    ErrorOut, ReleasesOut, LeaderboardOut, SignificanceOut, EntryOut, DatasetsOut, DatasetOut,
    ResultsOut, HideIn, HideOut, ReevaluateIn, PublishIn, SubmissionReceipt, SubmissionStatus,
    ReevaluateReport, PublishReport, HealthOut, RerunIn, RerunReport, ReleaseManifest,
    JobLimits, WithdrawIn, WithdrawReport,
)
MODELS += (PredictionFile,)  # an owner's downloads of their predictions
MODELS += (WorkersReport, WorkerMeOut)  # the admins' view of the workers
MODELS += (RegistryInfo, RegistryTokenOut, PrecheckReport)  # pushing to the registry

_ERROR_TEXT = {
    400: "a parameter or body that does not parse",
    401: "no valid API token",
    403: "a token without the right (not an admin, another team's entry, a worker token at a "
         "team endpoint or a team token at a worker endpoint)",
    404: "no such release, entry or dataset",
    409: "the action conflicts with the stored state",
    413: "upload over the size limit",
    422: "an archive or pushed image that is not one linux/amd64 image, is outside the "
         "team's namespace, or was submitted before",
    429: "over a rate limit or the team's daily submission limit (see Retry-After)",
    503: "the database or the queue did not answer",
}


_BINARY = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
# A release file served whole or by ranges (data pull's files, workers' blobs).
_FILE_RESPONSES: dict[str, Any] = {
    "200": {"description": "the file; ETag and X-Content-SHA256: its sha256",
            "content": _BINARY},
    "206": {"description": "the byte range asked for (Range header)", "content": _BINARY},
    "304": {"description": "not modified (If-None-Match)"},
    "416": {"description": "a range outside the file"},
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _param(name: str, schema: dict[str, Any], description: str, *,
           where: str = "query", required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "description": description, "schema": schema}


def _view_params(track: bool = True, filters: bool = True) -> list[dict[str, Any]]:
    params = [_param("release", {"type": "string", "maxLength": 100},
                     "release id, unique id prefix (6+ characters) or label; default: current")]
    if track:
        params.append(_param("track", {"type": "string", "enum": list(TRACKS)},
                             "training-data track (default raw)"))
    if filters:
        params += [
            _param("organism", {"type": "string", "enum": ["human", "mouse"]},
                   "keep datasets of this organism"),
            _param("tissue", {"type": "string", "enum": tissues()},
                   "keep datasets of this tissue"),
            _param("generalization", {"type": "string", "enum": ["intra", "inter",
                                                                 "intra-patient",
                                                                 "inter-patient"]},
                   "keep intra- or inter-patient datasets"),
            _param("genes", {"type": "integer", "enum": [128, 32]},
                   "keep datasets with this many genes"),
        ]
    return params


_FORMAT = _param("format", {"type": "string", "enum": ["json", "csv"]},
                 "json (default) or csv")


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): {"description": _ERROR_TEXT[code],
                        "content": {"application/json": {"schema": _ref(ErrorOut)}}}
            for code in codes}


def _get(summary: str, model: type[BaseModel], params: list[dict[str, Any]], *,
         csv: bool = True, errors: tuple[int, ...] = (400, 404, 429), tag: str = "read"
         ) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": _ref(model)}}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {"get": {"summary": summary, "tags": [tag], "operationId": _op_id(summary),
                    "parameters": params + ([_FORMAT] if csv else []),
                    "responses": {"200": {"description": "OK", "content": content},
                                  **_errors(*errors)}}}


def _op_id(summary: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in summary.lower()).split()
    return "_".join(words[:6])


def _post(summary: str, body: type[BaseModel] | None, answer: type[BaseModel],
          errors: tuple[int, ...], *, params: list[dict[str, Any]] | None = None,
          status: int = 200, raw_body: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary, "tags": ["admin" if body is not None else "submit"],
        "operationId": _op_id(summary), "security": [{"bearerAuth": []}],
        "parameters": params or [],
        "responses": {str(status): {"description": "OK",
                                    "content": {"application/json": {"schema": _ref(answer)}}},
                      **_errors(*errors)},
    }
    if body is not None:
        operation["requestBody"] = {"required": False, "content": {
            "application/json": {"schema": _ref(body)}}}
    if raw_body:
        operation["requestBody"] = {"required": True, "content": {
            "application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}
    return {"post": operation}


def openapi_document(server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document (JSON-ready dict)."""
    _, definitions = models_json_schema([(m, "serialization") for m in MODELS],
                                        ref_template="#/components/schemas/{model}")
    schemas = definitions.get("$defs", {})
    entry_id = _param("submission_id", {"type": "integer", "minimum": 1}, "submission id",
                      where="path")
    release_ref = _param("ref", {"type": "string", "minLength": 1, "maxLength": 100},
                         "release id, unique id prefix, label, or current", where="path")
    return {
        "openapi": "3.1.0",
        "info": {"title": "SpaRED Bench API", "version": "1",
                 "description": "Leaderboard of gene expression prediction from histology on "
                                "the 26 SpaRED datasets: JSON and CSV of everything the pages "
                                "show, submissions (API token) and admin actions. Errors are "
                                "{\"error\": \"...\", \"status\": N}. Rate limits are per "
                                "client and per server process."},
        "servers": [{"url": server_url.rstrip("/") or "/"}],
        "components": {"schemas": schemas, "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "a team's API token (`spared-bench team token`)"},
            "basicAuth": {"type": "http", "scheme": "basic",
                          "description": "any user name, a team's API token as password"}}},
        "paths": {
            "/api/releases": _get("List published releases", ReleasesOut, [],
                                  errors=(400, 429)),
            "/api/leaderboard": _get("Ranked leaderboard of a release and track",
                                     LeaderboardOut, _view_params()),
            "/api/significance": _get(
                "Significance tests of a leaderboard", SignificanceOut,
                [*_view_params(), _param("test", {"type": "string", "enum": ["dunn", "wilcoxon"]},
                                         "with format=csv: the Dunn matrix or the Wilcoxon "
                                         "pairs")]),
            "/api/entries/{submission_id}": _get("One entry in both tracks", EntryOut,
                                                 [entry_id, *_view_params(False, False)]),
            "/api/datasets": _get("Datasets and their difficulty", DatasetsOut,
                                  _view_params(False, False)),
            "/api/datasets/{name}": _get(
                "One dataset and every entry on it", DatasetOut,
                [_param("name", {"type": "string", "maxLength": 100},
                        "dataset name or abbreviation", where="path"),
                 *_view_params(False, False)]),
            "/api/results": _get("Long results table of a release and track", ResultsOut,
                                 _view_params(filters=False)),
            "/api/submissions": _post(
                "Submit a docker save archive or a pushed image", None, SubmissionReceipt,
                (400, 401, 404, 413, 422, 429, 503), status=201, raw_body=True,
                params=[_param("name", {"type": "string", "minLength": 1, "maxLength": 100},
                               "entry name, unique within the team", required=True),
                        _param("image", {"type": "string", "maxLength": 300},
                               "an image pushed to the registry, REGISTRY/team-ID/REPO@sha256:"
                               "DIGEST (then no body)"),
                        _param("description", {"type": "string", "maxLength": 10000},
                               "what the model is"),
                        _param("paper_url", {"type": "string", "maxLength": 500},
                               "http(s) link to the model's paper"),
                        _param("code_url", {"type": "string", "maxLength": 500},
                               "http(s) link to the model's code")]),
            "/api/submissions/precheck": {"get": {
                "summary": "Would this image under this name be accepted (before uploading)",
                "tags": ["submit"], "operationId": "submission_precheck",
                "security": [{"bearerAuth": []}], "parameters": [
                    _param("name", {"type": "string", "minLength": 1, "maxLength": 100},
                           "entry name", required=True),
                    _param("image_id", {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                           "the image's id (sha256 of its config)", required=True)],
                "responses": {"200": {"description": "OK", "content": {
                    "application/json": {"schema": _ref(PrecheckReport)}}},
                    **_errors(400, 401, 422, 429)}}},
            "/api/registry": {"get": {
                "summary": "Where your team pushes images (registry and namespace)",
                "tags": ["submit"], "operationId": "registry_info",
                "security": [{"bearerAuth": []}], "parameters": [],
                "responses": {"200": {"description": "OK", "content": {
                    "application/json": {"schema": _ref(RegistryInfo)}}},
                    **_errors(401, 404, 429)}}},
            "/api/registry/token": {"get": {
                "summary": "Registry token realm (Docker token authentication; Basic, the "
                           "team token as password)",
                "tags": ["submit"], "operationId": "registry_token",
                "security": [{"basicAuth": []}, {"bearerAuth": []}], "parameters": [
                    _param("service", {"type": "string", "enum": [REGISTRY_SERVICE]},
                           "the registry's service name", required=True),
                    _param("scope", {"type": "string", "maxLength": 300},
                           "repository:NAME:pull,push (repeatable)"),
                    _param("account", {"type": "string", "maxLength": 200},
                           "the user name Docker sends (not used)")],
                "responses": {"200": {"description": "OK", "content": {
                    "application/json": {"schema": _ref(RegistryTokenOut)}}},
                    **_errors(400, 401, 404, 429)}}},
            "/api/withdrawals": {"post": {
                **_post("Withdraw an entry or one version", WithdrawIn, WithdrawReport,
                        (400, 401, 403, 404, 429))["post"], "tags": ["submit"],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref(WithdrawIn)}}}}},
            "/api/submissions/{submission_id}": {"get": {
                "summary": "A submission's jobs, results and (own team) logs",
                "tags": ["submit"], "operationId": "submission_status",
                "security": [{"bearerAuth": []}], "parameters": [entry_id],
                "responses": {"200": {"description": "OK", "content": {
                    "application/json": {"schema": _ref(SubmissionStatus)}}},
                    **_errors(401, 403, 404, 429)}}},
            "/api/submissions/{team}/{name}": {"get": {
                "summary": "An entry's newest version: jobs, results and (own team) logs",
                "tags": ["submit"], "operationId": "entry_status",
                "security": [{"bearerAuth": []}], "parameters": [
                    _param("team", {"type": "string", "minLength": 1, "maxLength": 100},
                           "team name", where="path"),
                    _param("name", {"type": "string", "minLength": 1, "maxLength": 100},
                           "entry name", where="path")],
                "responses": {"200": {"description": "OK", "content": {
                    "application/json": {"schema": _ref(SubmissionStatus)}}},
                    **_errors(401, 403, 404, 429)}}},
            "/api/admin/reevaluate": _post("Re-evaluate entries on a release", ReevaluateIn,
                                           ReevaluateReport, (400, 401, 403, 404, 409, 429,
                                                              503)),
            "/api/admin/rerun": _post("Re-run an entry's jobs (reproducibility)", RerunIn,
                                      RerunReport, (400, 401, 403, 404, 429, 503)),
            "/api/admin/entries/{submission_id}/hide": {"post": {
                **_post("Hide or show an entry", HideIn, HideOut,
                        (400, 401, 403, 404, 429))["post"], "parameters": [entry_id]}},
            "/api/admin/releases": _post("Publish a release", PublishIn, PublishReport,
                                         (400, 401, 403, 404, 409, 429, 503)),
            "/api/limits": _get("Job limits of this service (time, memory, CPUs, GPU, disk)",
                                JobLimits, [], csv=False, errors=(429,)),
            "/api/releases/{ref}/public": _get(
                "Training data an author pulls for check", ReleaseManifest, [release_ref],
                csv=False),
            "/api/releases/{ref}/files/{rel}": {"get": {
                "summary": "One file of the public training data (HTTP ranges: resumable)",
                "tags": ["read"], "operationId": "public_release_file",
                "parameters": [release_ref, _param(
                    "rel", {"type": "string", "maxLength": 300},
                    "a path listed by /api/releases/{ref}/public", where="path")],
                "responses": {
                    **_FILE_RESPONSES,
                    **_errors(400, 404, 429)}}},
            "/api/predictions": {"get": {
                "summary": "Your entry's kept predictions on the hidden split (owners, admins)",
                "tags": ["submit"], "operationId": "predictions_list",
                "security": [{"bearerAuth": []}],
                "parameters": [_param("submission", {"type": "string", "minLength": 1,
                                                     "maxLength": 200},
                                      "submission id or TEAM/NAME", required=True)],
                "responses": {"200": {"description": "one per result", "content": {
                    "application/json": {"schema": {"type": "array",
                                                    "items": _ref(PredictionFile)}}}},
                    **_errors(400, 401, 403, 404, 429)}}},
            "/api/predictions/{result_id}": {"get": {
                "summary": "One result's predictions as .npy (owners, admins)",
                "tags": ["submit"], "operationId": "predictions_file",
                "security": [{"bearerAuth": []}],
                "parameters": [_param("result_id", {"type": "integer", "minimum": 0,
                                                    "maximum": 2**63 - 1},
                                      "result_id from /api/predictions", where="path")],
                "responses": {
                    "200": {"description": "float32 .npy; ETag and X-Content-SHA256: the "
                                           "array's sha256", "content": _BINARY},
                    "304": {"description": "not modified (If-None-Match)"},
                    **_errors(401, 403, 404, 429)}}},
            "/api/admin/workers": {"get": {
                **_get("The workers: host, GPUs, current jobs, heartbeat age, throughput",
                       WorkersReport, [_param("lease_s", {"type": "number", "minimum": 1,
                                                          "maximum": 86400},
                                              "seconds without a heartbeat after which a "
                                              "worker is shown as silent (default 60)")],
                       csv=False, errors=(400, 401, 403, 429), tag="admin")["get"],
                "security": [{"bearerAuth": []}]}},
            "/api/worker/me": {"get": {
                **_get("The worker name of a worker token", WorkerMeOut, [], csv=False,
                       errors=(401, 403, 429), tag="worker")["get"],
                "security": [{"bearerAuth": []}]}},
            "/api/worker/releases/{ref}": {"get": {
                **_get("A published release's whole manifest (workers)", ReleaseManifest,
                       [release_ref], csv=False, errors=(401, 403, 404, 429),
                       tag="worker")["get"],
                "security": [{"bearerAuth": []}]}},
            "/api/worker/registry-token": {"get": {
                **_get("A pull-only registry token for a submitted image (workers)",
                       RegistryTokenOut, [_param("repository",
                                                 {"type": "string", "maxLength": 300},
                                                 "the repository of a submitted image",
                                                 required=True)],
                       csv=False, errors=(401, 403, 404, 429), tag="worker")["get"],
                "security": [{"bearerAuth": []}]}},
            "/api/worker/blobs/{sha256}": {"get": {
                "summary": "One file of a published release by its sha256 (workers; ranges)",
                "tags": ["worker"], "operationId": "worker_blob",
                "security": [{"bearerAuth": []}],
                "parameters": [_param("sha256", {"type": "string", "maxLength": 64},
                                      "a sha256 listed by /api/worker/releases/{ref}",
                                      where="path")],
                "responses": {
                    **_FILE_RESPONSES,
                    **_errors(400, 401, 403, 404, 429)}}},
            "/healthz": {"get": {"summary": "Health", "tags": ["read"],
                                 "operationId": "health", "responses": {"200": {
                                     "description": "OK", "content": {"application/json": {
                                         "schema": _ref(HealthOut)}}}, **_errors(503)}}},
        },
    }
