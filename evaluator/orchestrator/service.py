"""The service layer: intake, status, publishing and re-evaluation, over the store and the queue.

The CLI calls these functions against the embedded store; the leaderboard web app's API calls
the same ones (``submit_image_archive`` for ``POST /api/submissions``, ``get_status`` for
``GET /api/submissions/<id>``, ``authenticate`` for its bearer tokens). ``by`` arguments are
the authenticated team, or None for a local operator (someone with the database at hand).

Jobs are written to the database first and enqueued after the commit: a job is never on the
queue without its row, and a row whose message was lost is re-enqueued by the workers.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from evaluator.contract import JobLimits
from evaluator.contract.image import image_problem
from evaluator.core.errors import BenchError
from evaluator.core.links import link_problem
from evaluator.core.settings import Settings
from evaluator.core.text import clean_text, name_problem
from evaluator.core.vocabulary import TRACKS
from evaluator.datasets.release import load_release
from evaluator.orchestrator.auth import ensure_team, require_admin
from evaluator.orchestrator.errors import (
    AuthError,
    LimitExceeded,
    OrchestratorError,
    QueueUnavailable,
    RegistryNotConfigured,
    SubmissionRejected,
)
from evaluator.orchestrator.estimates import (
    ETA_METHOD,
    format_eta,
    queue_estimates,
    submissions_left_today,
)
from evaluator.orchestrator.images import (
    MAX_IMAGE_FILES,
    MAX_IMAGE_LAYERS,
    ImageFacts,
    archive_path,
    check_platform,
    check_runnable,
    check_size,
    image_facts,
    load_archive,
    read_archive,
    receive_stream,
    save_archive,
    scan_stream_layer,
    strip_tags,
)
from evaluator.orchestrator.queue import JobQueue
from evaluator.orchestrator.registry import (
    DIGEST,
    RegistryClient,
    RegistryRef,
    TokenSigner,
    granted_actions,
    registry_host,
    team_namespace,
)
from evaluator.store import (
    Job,
    NewJobs,
    NotFound,
    ReleaseRecord,
    Submission,
    Team,
    attempts_of,
    bump_view_generation,
    create_jobs,
    current_release,
    get_release_record,
    get_submission,
    holds_image,
    jobs_of,
    open_store,
    results_rows,
    session_scope,
    status_counts,
    submissions_submitted_since,
    today_start_utc,
    upsert_release,
    utcnow,
    versions_of,
)

log = logging.getLogger(__name__)

BASELINE_TEAM = "baselines"
LOCAL_TEAM = "local"


@dataclass
class Bench:
    """What the service functions work on: settings, the database and the queue."""

    settings: Settings
    engine: Engine
    queue: JobQueue

    @classmethod
    def open(cls, settings: Settings | None = None) -> Bench:
        """Open the store (migrating it) and the queue named by the settings."""
        settings = settings or Settings.from_env()
        return cls(settings, open_store(settings.resolved_database_url),
                   JobQueue(settings.resolved_queue_url))

    def close(self) -> None:
        """Close the queue's connections (the engine's pool is shared per process)."""
        self.queue.close()

    @property
    def images_dir(self) -> Path:
        """Archives of submitted images (``<hex>.tar``), for workers on other engines."""
        return self.settings.home / "images"

    @property
    def max_image_bytes(self) -> int:
        """The largest image accepted, archive or unpacked."""
        return int(self.settings.max_image_mb * 2**20)

    @property
    def registry_host(self) -> str:
        """The registry as Docker names it (``host:port``); ``RegistryNotConfigured`` without
        one."""
        if not self.settings.registry_url:
            raise RegistryNotConfigured()
        return registry_host(self.settings.registry_url)

    def registry_signer(self) -> TokenSigner:
        """The key that signs registry tokens; ``RegistryNotConfigured`` without a registry."""
        if not self.settings.registry_url:
            raise RegistryNotConfigured()
        return TokenSigner.load_or_create(self.settings.registry_key_path)


class SubmissionReceipt(BaseModel):
    """What intake returns: the new submission and the jobs queued for it."""

    model_config = ConfigDict(extra="forbid")

    submission_id: int
    team: str
    name: str
    image_digest: str
    platform: str
    size_bytes: int
    release_id: str | None
    jobs_queued: int
    message: str
    limits: JobLimits | None = None
    version: int = Field(default=1, description="1 for a new name; resubmitting a name makes "
                                                "the next version, which supersedes the older "
                                                "ones on the leaderboard once it has results")
    supersedes: int | None = Field(default=None, description="the submission id of the "
                                                             "entry's previous version")
    paper_url: str | None = None
    code_url: str | None = None
    submissions_left_today: int | None = Field(
        default=None, description="After this one; None for admins (no daily limit)")


class JobView(BaseModel):
    """One job as its author sees it (the log tail only for the author and admins)."""

    model_config = ConfigDict(extra="forbid")

    job_id: int
    release_id: str
    dataset: str
    track: str
    status: str
    attempts: int
    max_attempts: int
    failure_kind: str | None
    outcome: str | None = Field(
        default=None, description="The last attempt's status in the contract's names "
                                  "(exit_nonzero, timed_out, ..., succeeded); None before one")
    run: int = Field(default=0, description="0: the ranked evaluation; 1, 2, ...: re-runs")
    message: str
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    log_tail: str | None = None
    queue_position: int | None = Field(
        default=None, description="Queued jobs only: 1 = the next to run on the service")
    eta_s: float | None = Field(
        default=None, description="Queued jobs only: estimated seconds until done (see "
                                  "SubmissionStatus.eta_method); None without history")

    def status_name(self) -> str:
        """The status in the contract's names: a failed job shows what failed (exit_nonzero,
        timed_out, ..., or the infrastructure's engine_unavailable, worker_lost, ...); a queued
        one its position and ETA."""
        if self.status == "failed" and self.outcome and self.outcome not in (
                "succeeded", "duplicate_result"):
            return self.outcome
        if self.status == "queued" and self.queue_position is not None:
            return f"queued #{self.queue_position}, ETA {format_eta(self.eta_s)}"
        return self.status


class SubmissionStatus(BaseModel):
    """A submission's state: its jobs (per release) and its results."""

    model_config = ConfigDict(extra="forbid")

    submission_id: int
    team: str
    name: str
    description: str
    image_digest: str
    is_baseline: bool
    created_at: datetime
    counts: dict[str, int]
    jobs: list[JobView]
    results: list[dict[str, Any]]
    version: int = 1
    versions: dict[int, int] = Field(default_factory=dict, description="version -> submission "
                                     "id of the entry's versions this caller may see")
    withdrawn: bool = False
    paper_url: str | None = None
    code_url: str | None = None
    eta_method: str = ""
    submissions_left_today: int | None = Field(
        default=None, description="The owning team's submissions left today (UTC), shown to "
                                  "the team and admins; None: no limit, or not yours")

    @property
    def done(self) -> bool:
        """True when no job is queued or running."""
        return not any(job.status in {"queued", "running"} for job in self.jobs)


class PublishReport(BaseModel):
    """What publishing a release did."""

    model_config = ConfigDict(extra="forbid")

    release_id: str
    label: str | None
    previous_release_id: str | None
    jobs_queued: dict[str, int]
    # Each baseline's re-run (run 1) on the release, for the reproducibility mark.
    reruns_queued: dict[str, int] = Field(default_factory=dict)


class RerunReport(BaseModel):
    """What queuing a re-run of an entry did: the run number and its jobs."""

    model_config = ConfigDict(extra="forbid")

    release_id: str
    entry: str
    run: int
    jobs_queued: int


class WithdrawReport(BaseModel):
    """What withdrawing (or reinstating) an entry's versions did."""

    model_config = ConfigDict(extra="forbid")

    entry: str
    withdrawn: bool
    versions: list[int] = Field(description="the versions whose state changed")
    submission_ids: list[int]
    message: str


class ReevaluateReport(BaseModel):
    """What queuing entries on a release did: jobs queued per entry, entries skipped."""

    model_config = ConfigDict(extra="forbid")

    release_id: str
    jobs_queued: dict[str, int]
    skipped: dict[str, int]


# -- helpers ----------------------------------------------------------------------------------


def _entries(release: ReleaseRecord) -> list[tuple[str, str]]:
    return [(dataset, track) for dataset, tracks in sorted(release.tracks.items())
            for track in tracks]


def _enqueue_after_commit(bench: Bench, job_ids: list[int]) -> str:
    """Enqueue committed jobs; a queue outage is reported, not raised (the workers resync)."""
    if not job_ids:
        return ""
    try:
        bench.queue.enqueue(job_ids)
    except QueueUnavailable as error:
        log.warning("%s", error)
        return f"; {error}"
    return ""


def _team_of(session: Session, by: Team | None, team_name: str | None) -> Team:
    if by is not None:
        if team_name and team_name != by.name and not by.is_admin:
            raise AuthError(f"team {team_name!r}: expected your own team {by.name!r}, found "
                            "another (only admins submit for others)")
        if team_name and team_name != by.name:
            return ensure_team(session, team_name)
        team = session.get(Team, by.id)
        if team is None:
            raise AuthError(f"team {by.name!r} no longer exists")
        return team
    return ensure_team(session, team_name or LOCAL_TEAM, admin=team_name == BASELINE_TEAM)


def _check_daily_limit(session: Session, bench: Bench, team: Team) -> None:
    if team.is_admin:
        return
    limit = (team.daily_submission_limit if team.daily_submission_limit is not None
             else bench.settings.daily_submissions)
    used = submissions_submitted_since(session, team.id or 0, today_start_utc())
    if used >= limit:
        raise LimitExceeded(team.name, limit, used)


def check_links(links: dict[str, str | None]) -> dict[str, str | None]:
    """Entry links (``paper_url``, ``code_url``) checked by ``link_problem``; empty ones are
    None. Raises ``SubmissionRejected``."""
    out: dict[str, str | None] = {}
    for field, value in links.items():
        value = (value or "").strip() or None
        problem = link_problem(value) if value is not None else None
        if problem is not None:
            raise SubmissionRejected(f"{field}: {problem}")
        out[field] = value
    return out


def _check_new(session: Session, team: Team, name: str, image_id: str) -> None:
    if not name.strip() or len(name) > 100 or "/" in name:
        raise SubmissionRejected(f"submission name {name!r}: expected 1-100 characters without "
                                 "'/', found otherwise")
    problem = name_problem(name)
    if problem is not None:
        raise SubmissionRejected(f"submission name {name!r}: {problem}")
    same = session.exec(select(Submission).where(Submission.image_digest == image_id)).first()
    if same is not None:
        owner = session.get(Team, same.team_id)
        # Name the earlier entry only where the submitter may see it: its own, or a public one.
        visible = (same.team_id == team.id or team.is_admin
                   or not (same.hidden or same.withdrawn_at is not None))
        which = (f"as #{same.id} ({owner.name if owner else '?'}/{same.name}) on "
                 f"{same.created_at:%Y-%m-%d}" if visible else "by another team")
        raise SubmissionRejected(
            f"image {image_id[:19]}: expected a new image, found it already submitted {which}; "
            "an image is evaluated once per release (maintainers re-evaluate it on new "
            "releases)")


def _record(bench: Bench, *, by: Team | None, team_name: str | None, name: str,
            description: str, image_ref: str, facts: ImageFacts, baseline: bool,
            links: dict[str, str | None] | None = None) -> SubmissionReceipt:
    """Insert the submission (the next version of its name) and its jobs on the current
    release, then enqueue them."""
    with session_scope(bench.engine) as session:
        team = _team_of(session, by, team_name)
        # Serialize a team's submissions (Postgres row lock) so the daily limit holds under
        # concurrent uploads; SQLite's write transactions are serialized already.
        session.exec(select(Team).where(Team.id == team.id).with_for_update()).one()
        if baseline and not team.is_admin:
            raise AuthError(f"baseline {name!r}: expected an admin team to register baselines, "
                            f"found team {team.name!r}")
        _check_daily_limit(session, bench, team)
        _check_new(session, team, name, facts.image_id)
        # The team's row lock above serializes this; the unique (team, name, version) backs it.
        earlier = versions_of(session, team.id or 0, name)
        checked = check_links(links or {})
        submission = Submission(team_id=team.id or 0, name=name,
                                description=clean_text(description),
                                image_ref=image_ref[:300], image_digest=facts.image_id,
                                image_size_bytes=facts.size_bytes, platform=facts.platform,
                                is_baseline=baseline,
                                version=max((s.version for s in earlier), default=0) + 1,
                                paper_url=checked.get("paper_url"),
                                code_url=checked.get("code_url"))
        session.add(submission)
        session.flush()
        release = current_release(session)
        queued = NewJobs()
        if release is not None:
            queued = create_jobs(session, submission.id or 0, release.release_id,
                                 _entries(release),
                                 max_attempts=bench.settings.job_max_attempts)
        receipt = SubmissionReceipt(
            submission_id=submission.id or 0, team=team.name, name=name,
            image_digest=facts.image_id, platform=facts.platform, size_bytes=facts.size_bytes,
            release_id=release.release_id if release else None,
            jobs_queued=len(queued.to_enqueue), message="",
            limits=JobLimits.from_settings(bench.settings), version=submission.version,
            supersedes=earlier[-1].id if earlier else None, paper_url=submission.paper_url,
            code_url=submission.code_url,
            submissions_left_today=submissions_left_today(session, team,
                                                          bench.settings.daily_submissions))
    note = _enqueue_after_commit(bench, queued.to_enqueue)
    if receipt.release_id is None:
        receipt.message = ("recorded; no release is published yet, so nothing was queued "
                           "(publish one with `spared-bench data publish`)")
    else:
        receipt.message = (f"queued {receipt.jobs_queued} job(s) on release "
                           f"{receipt.release_id[:12]}{note}")
    if receipt.version > 1:
        receipt.message += (f"; version {receipt.version} of {team_name or receipt.team}/"
                            f"{name}: it replaces #{receipt.supersedes} on the leaderboard once "
                            "it has results")
    return receipt


def _docker(client: Any) -> Any:
    if client is not None:
        return client
    # why here: docker is the worker extra; the web app imports this module and registers no local
    # image
    from evaluator.runners import docker_client

    return docker_client()


# -- intake -------------------------------------------------------------------------------------


def submit_image_archive(bench: Bench, source: Path | BinaryIO | Iterable[bytes], *,
                         name: str, description: str = "", by: Team | None = None,
                         team: str | None = None, baseline: bool = False,
                         load: bool = True, client: Any = None, paper_url: str | None = None,
                         code_url: str | None = None) -> SubmissionReceipt:
    """Take a ``docker save`` archive (a path, a file object or a stream of chunks) as a
    submission: check it, load it, record its digest and queue its jobs.

    The archive is read once, streamed to disk and refused as soon as it passes
    ``Settings.max_image_mb``; it must hold one linux/amd64 image whose id is new, and the
    unpacked image must fit the same limit. The team's daily limit is checked before reading.
    The id, platform and size are read from the archive itself; with ``load`` the image is
    also loaded into this machine's engine (the engine's own view is checked again). Without
    ``load`` (the web app, which holds no docker socket) no docker code is imported: workers
    load the kept archive when their engine lacks the image.
    Resubmitting a name of the team makes its next version. ``paper_url`` and ``code_url``
    are optional http(s) links (``check_links``).
    Raises ``SubmissionRejected``, ``LimitExceeded``, ``AuthError``.
    """
    links = check_links({"paper_url": paper_url, "code_url": code_url})
    with session_scope(bench.engine) as session:
        _check_daily_limit(session, bench, _team_of(session, by, team))
    incoming_dir = bench.images_dir / "incoming"
    if isinstance(source, Path | str):
        with open(source, "rb") as handle:
            received = receive_stream(handle, incoming_dir, bench.max_image_bytes)
    else:
        received = receive_stream(source, incoming_dir, bench.max_image_bytes)
    placed: Path | None = None
    try:
        facts = read_archive(received, max_unpacked_bytes=bench.max_image_bytes)
        check_platform(facts.platform, "image archive")
        check_runnable(facts.problem, "image archive")
        # docker load would apply the archive's own tags: a team could re-point any name.
        strip_tags(received)
        with session_scope(bench.engine) as session:
            _check_new(session, _team_of(session, by, team), name, facts.image_id)
        loaded = facts.as_image()
        if load:
            engine_client = _docker(client)
            existed = _present(engine_client, facts.image_id)
            loaded = load_archive(engine_client, received, facts)
            try:
                check_platform(loaded.platform, "image")
                check_size(loaded.size_bytes, bench.max_image_bytes, "image (unpacked)")
            except SubmissionRejected:
                if not existed:
                    _remove_image(engine_client, loaded.image_id)
                raise
        target = archive_path(bench.images_dir, loaded.image_id)
        with _archive_lock(bench):
            if not target.exists():
                os.replace(received, target)
                placed = target
            try:
                # Referred to by content id only: a tag names nothing the service relies on.
                return _record(bench, by=by, team_name=team, name=name,
                               description=description, image_ref=loaded.image_id,
                               facts=loaded, baseline=baseline, links=links)
            except BaseException:
                if placed is not None:
                    _drop_unreferenced_archive(bench, placed, loaded.image_id)
                raise
    finally:
        received.unlink(missing_ok=True)


class RegistryInfo(BaseModel):
    """Where a team pushes its images: the registry as Docker names it and the team's own
    namespace in it (``push`` shows the commands)."""

    model_config = ConfigDict(extra="forbid")

    registry: str
    namespace: str
    push: str


class PrecheckReport(BaseModel):
    """What submitting an image under a name would make, checked before any upload."""

    model_config = ConfigDict(extra="forbid")

    name: str
    image_digest: str
    version: int
    submissions_left_today: int | None


def registry_info(bench: Bench, by: Team) -> RegistryInfo:
    """The registry and namespace ``by`` pushes to; ``RegistryNotConfigured`` without one."""
    host = bench.registry_host
    namespace = team_namespace(by.id or 0)
    return RegistryInfo(
        registry=host, namespace=namespace,
        push=(f"docker login {host} -u {namespace} (your token as the password); docker tag "
              f"IMAGE {host}/{namespace}/NAME:v1; docker push {host}/{namespace}/NAME:v1; "
              f"spared-bench submit {host}/{namespace}/NAME@sha256:DIGEST --name NAME "
              "(or just `spared-bench submit IMAGE --name NAME --server URL`, which does all)"))


def registry_token(bench: Bench, by: Team, scopes: list[str]) -> str:
    """Sign a registry token for ``by`` granting what ``scopes`` ask within its rights
    (``registry.granted_actions``); scopes outside them are left out (the registry then
    answers 'denied')."""
    signer = bench.registry_signer()
    namespace = team_namespace(by.id or 0)
    access = []
    for scope in scopes[:20]:
        actions = granted_actions(scope, namespace, admin=by.is_admin)
        if actions:
            access.append((scope.split(":")[1], actions))
    return signer.token(f"team:{by.id}", access)


def worker_pull_token(bench: Bench, worker: str, repository: str) -> str:
    """Sign a pull-only token for ``repository`` for a worker that is running a job of a
    submission in it (an image is pulled for a job, after its claim); anything else is
    refused, so a worker token reaches only the images of its own jobs."""
    signer = bench.registry_signer()
    with session_scope(bench.engine) as session:
        held = holds_image(session, worker, f"{bench.registry_host}/{repository}@")
    if not held:
        raise AuthError(f"repository {repository[:200]!r}: expected the image of a job worker "
                        f"{worker!r} is running, found none")
    return signer.token(f"worker:{worker}", [(repository, ["pull"])])


def precheck_submission(bench: Bench, *, name: str, image_id: str, by: Team | None = None,
                        team: str | None = None) -> PrecheckReport:
    """Check that ``image_id`` under ``name`` would be accepted, before its upload: a known
    digest, a bad name or a spent daily limit are refused without a byte of the image.

    Raises ``SubmissionRejected``, ``LimitExceeded``, ``AuthError``.
    """
    if not DIGEST.match(image_id):
        raise SubmissionRejected(f"image id: expected sha256:<64 hex digits>, found "
                                 f"{image_id[:80]!r}")
    with session_scope(bench.engine) as session:
        owner = _team_of(session, by, team)
        _check_daily_limit(session, bench, owner)
        _check_new(session, owner, name, image_id)
        earlier = versions_of(session, owner.id or 0, name)
        return PrecheckReport(name=name, image_digest=image_id,
                              version=max((s.version for s in earlier), default=0) + 1,
                              submissions_left_today=submissions_left_today(
                                  session, owner, bench.settings.daily_submissions))


def submit_registry_image(bench: Bench, ref: str, *, name: str, description: str = "",
                          by: Team | None = None, team: str | None = None,
                          baseline: bool = False, paper_url: str | None = None,
                          code_url: str | None = None) -> SubmissionReceipt:
    """Take an image pushed to the service's registry (``HOST/team-<id>/REPO@sha256:...``,
    by digest) as a submission of its namespace's team.

    Reads the manifest and config through the registry's API (digest-verified): one
    linux/amd64 image that can start as a job, new, within the size limit; every layer is
    streamed through the same bounded scan as an uploaded archive's (a bomb stops at the
    limit, never on a worker's engine). No engine is touched: workers pull by digest.
    Raises ``SubmissionRejected``, ``LimitExceeded``, ``AuthError``,
    ``RegistryNotConfigured``.
    """
    links = check_links({"paper_url": paper_url, "code_url": code_url})
    signer = bench.registry_signer()
    parsed = RegistryRef.parse(ref)
    host = bench.registry_host
    with session_scope(bench.engine) as session:
        owner = _team_of(session, by, team)
        _check_daily_limit(session, bench, owner)
        namespace = team_namespace(owner.id or 0)
    if parsed.host != host:
        raise SubmissionRejected(f"image {parsed}: expected an image in this service's registry "
                                 f"{host}, found registry {parsed.host}")
    if not parsed.repository.startswith(namespace + "/"):
        raise SubmissionRejected(f"image {parsed}: expected a repository of your team's "
                                 f"namespace {namespace}/, found {parsed.repository}")
    client = RegistryClient(bench.settings.registry_api_url or bench.settings.registry_url
                            or "", signer)
    try:
        facts, layers = _registry_facts(bench, client, parsed)
        check_platform(facts.platform, f"image {parsed}")
        check_runnable(facts.problem, f"image {parsed}")
        with session_scope(bench.engine) as session:
            _check_new(session, _team_of(session, by, team), name, facts.image_id)
        _scan_registry_layers(bench, client, parsed, layers)
    finally:
        client.close()
    return _record(bench, by=by, team_name=team, name=name, description=description,
                   image_ref=str(parsed), facts=facts, baseline=baseline, links=links)


def _registry_facts(bench: Bench, client: RegistryClient,
                    ref: RegistryRef) -> tuple[ImageFacts, list[str]]:
    """The image's facts from its manifest and config, and its layers' digests."""
    manifest = client.manifest(ref)
    layers = manifest["layers"]
    if len(layers) > MAX_IMAGE_LAYERS:
        raise SubmissionRejected(f"image {ref}: expected at most {MAX_IMAGE_LAYERS} layers, "
                                 f"found {len(layers)}")
    digests = [str(layer.get("digest") or "") if isinstance(layer, dict) else ""
               for layer in layers]
    config_digest = str(manifest["config"].get("digest") or "")
    for digest in (config_digest, *digests):
        if not DIGEST.match(digest):
            raise SubmissionRejected(f"image {ref}: expected sha256 digests of the config and "
                                     f"layers, found {digest[:80]!r}")
    sizes = [layer.get("size") for layer in layers]
    if not all(isinstance(size, int) and size >= 0 for size in sizes):
        raise SubmissionRejected(f"image {ref}: expected the layers' sizes in bytes, found "
                                 f"{str(sizes)[:80]}")
    pushed = sum(sizes)
    check_size(pushed, bench.max_image_bytes, f"image {ref} (compressed layers)")
    config = client.config(ref, config_digest)
    runtime = config.get("config")
    facts = ImageFacts(image_id=config_digest,
                       platform=f"{config.get('os', '?')}/{config.get('architecture', '?')}",
                       size_bytes=pushed, repo_tags=(),
                       problem=image_problem(runtime if isinstance(runtime, dict) else {}))
    return facts, digests


def _scan_registry_layers(bench: Bench, client: RegistryClient, ref: RegistryRef,
                          layers: list[str]) -> None:
    """Stream every layer through the archive's bounded scan (unpacked size, file count)."""
    budget, files = bench.max_image_bytes, MAX_IMAGE_FILES
    for digest in layers:
        unpacked, members = scan_stream_layer(client.blob_stream(ref, digest), budget, files,
                                              f"image {ref}", digest)
        budget -= unpacked
        files -= members


@contextlib.contextmanager
def _archive_lock(bench: Bench) -> Iterator[None]:
    """Serialize placing an archive, recording its submission and dropping a refused one,
    across the processes of this machine (web workers, CLI): a refused upload removes the
    archive it placed only while no other upload of the same image is between the two."""
    bench.images_dir.mkdir(parents=True, exist_ok=True)
    # Opened read-only (flock needs no write access): the lock file may belong to another
    # user of the same store (workers run as root, the web app as 10001).
    fd = os.open(bench.images_dir / ".intake.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _drop_unreferenced_archive(bench: Bench, archive: Path, image_id: str) -> None:
    """Remove an archive this refused intake placed, unless a submission uses the image."""
    with session_scope(bench.engine) as session:
        used = session.exec(select(Submission.id).where(
            Submission.image_digest == image_id)).first()
    if used is None:
        archive.unlink(missing_ok=True)


def register_image(bench: Bench, ref: str, *, name: str, description: str = "",
                   by: Team | None = None, team: str | None = None, baseline: bool = False,
                   keep_archive: bool = True, client: Any = None, paper_url: str | None = None,
                   code_url: str | None = None) -> SubmissionReceipt:
    """Take an image already on this machine's engine as a submission (by tag or id).

    Records its content id (the tag is kept only as a label), checks platform and size, and
    with ``keep_archive`` saves it to the archive store for workers on other engines.
    Resubmitting a name makes its next version; links as ``submit_image_archive``.
    Raises ``SubmissionRejected``, ``LimitExceeded``, ``AuthError``.
    """
    links = check_links({"paper_url": paper_url, "code_url": code_url})
    engine_client = _docker(client)
    facts = image_facts(engine_client, ref)
    check_platform(facts.platform, f"image {ref!r}")
    check_runnable(facts.problem, f"image {ref!r}")
    check_size(facts.size_bytes, bench.max_image_bytes, f"image {ref!r}")
    with session_scope(bench.engine) as session:
        owner = _team_of(session, by, team)
        _check_daily_limit(session, bench, owner)
        _check_new(session, owner, name, facts.image_id)
    with _archive_lock(bench):
        placed = None
        if keep_archive and not archive_path(bench.images_dir, facts.image_id).exists():
            placed = save_archive(engine_client, facts.image_id, bench.images_dir)
        try:
            return _record(bench, by=by, team_name=team, name=name, description=description,
                           image_ref=ref, facts=facts, baseline=baseline, links=links)
        except BaseException:
            if placed is not None:
                _drop_unreferenced_archive(bench, placed, facts.image_id)
            raise


def _present(client: Any, image_id: str) -> bool:
    # why here: docker is the worker extra (see register_image)
    from docker.errors import ImageNotFound

    try:
        client.images.get(image_id)
        return True
    except ImageNotFound:
        return False


def _remove_image(client: Any, image_id: str) -> None:
    try:
        client.images.remove(image_id, force=True)
    except Exception as error:  # a rejected image left behind costs disk, not correctness
        log.warning("could not remove rejected image %s: %s", image_id[:19], error)


# -- status -------------------------------------------------------------------------------------


def get_status(bench: Bench, ref: str | int, *, by: Team | None = None,
               logs: bool = True) -> SubmissionStatus:
    """A submission's status; what is shown depends on who asks.

    - Anyone (another team's public entry): name, team, description, digest, the counts of
      jobs by status and the results the leaderboard shows; no job list.
    - Its own team: every job, with messages and log tails (``logs``).
    - Admins and local use (``by`` None): that, plus the worker that ran each job.
    ``TEAM/NAME`` names the entry's newest version.
    Raises ``NotFound`` and, for another team's hidden or withdrawn entry, ``AuthError``.
    """
    with session_scope(bench.engine) as session:
        submission = get_submission(session, ref)
        team = session.get(Team, submission.team_id)
        own = by is None or by.is_admin or by.id == submission.team_id
        operator = by is None or by.is_admin
        if (submission.hidden or submission.withdrawn_at is not None) and not own:
            raise AuthError(f"submission #{submission.id}: expected your own or a public entry, "
                            "found a hidden or withdrawn one of another team")
        jobs = []
        for job in jobs_of(session, submission.id or 0) if own else []:
            attempts = attempts_of(session, job.id or 0)
            tail = (attempts[-1].log_text if attempts else "") if logs else None
            view = _job_view(job, tail)
            view.outcome = attempts[-1].outcome if attempts else None
            if not operator:
                view.worker = None
            jobs.append(view)
        estimates = queue_estimates(session, [job.job_id for job in jobs
                                              if job.status == "queued"])
        for view in jobs:
            if view.job_id in estimates:
                view.queue_position = estimates[view.job_id].position
                view.eta_s = estimates[view.job_id].eta_s
        left = None
        if own and team is not None:
            left = submissions_left_today(session, team, bench.settings.daily_submissions)
        results = []
        for release_id in sorted({job.release_id for job in jobs}):
            for track in TRACKS:
                results += [r for r in results_rows(session, release_id, track,
                                                    include_hidden=True)
                            if r["submission_id"] == submission.id]
        return SubmissionStatus(
            submission_id=submission.id or 0, team=team.name if team else "?",
            name=submission.name, description=submission.description,
            image_digest=submission.image_digest, is_baseline=submission.is_baseline,
            created_at=submission.created_at, counts=status_counts(session, submission.id or 0),
            jobs=jobs, results=results, version=submission.version,
            versions={v.version: v.id or 0
                      for v in versions_of(session, submission.team_id, submission.name)
                      if own or not (v.hidden or v.withdrawn_at is not None)},
            withdrawn=submission.withdrawn_at is not None, paper_url=submission.paper_url,
            code_url=submission.code_url, eta_method=ETA_METHOD if estimates else "",
            submissions_left_today=left)


def _job_view(job: Job, tail: str | None) -> JobView:
    return JobView(job_id=job.id or 0, release_id=job.release_id, dataset=job.dataset,
                   track=job.track, status=job.status, attempts=job.attempts,
                   max_attempts=job.max_attempts, failure_kind=job.failure_kind,
                   message=job.message, queued_at=job.queued_at, started_at=job.started_at,
                   finished_at=job.finished_at, worker=job.worker, log_tail=tail, run=job.run)


# -- withdrawal ---------------------------------------------------------------------------------


def withdraw(bench: Bench, ref: str | int, *, version: int | None = None,
             by: Team | None = None, withdrawn: bool = True) -> WithdrawReport:
    """Withdraw an entry (every version, or ``version``) from the leaderboard and the public
    pages; its team and admins still see it, its results stay stored.

    ``ref`` is ``TEAM/NAME`` or a submission id (which names its entry: every version unless
    ``version``). The owning team may withdraw; putting a version back (``withdrawn=False``)
    is for admins (and local operators) only, so a withdrawal is a public statement an author
    cannot take back alone. Withdrawing the newest version shows the previous one with results
    again. Bumps ``view_generation`` so every web process drops its cached views.
    Raises ``NotFound``, ``AuthError``.
    """
    with session_scope(bench.engine) as session:
        named = get_submission(session, ref)
        if version is not None and named.version != version:
            chosen = [s for s in versions_of(session, named.team_id, named.name)
                      if s.version == version]
            if not chosen:
                raise NotFound("submission", f"{_label(session, named)} version {version}",
                               "expected one of its versions (spared-bench status TEAM/NAME "
                               "lists them)")
            named = chosen[0]
        label = _label(session, named)
        if by is not None and not by.is_admin:
            if by.id != named.team_id:
                raise AuthError(f"entry {label}: expected your own team's entry to withdraw, "
                                f"found one of another team")
            if not withdrawn:
                raise AuthError(f"entry {label}: expected an admin to put a withdrawn entry "
                                f"back, found team {by.name!r} (withdrawal is final for "
                                "teams)")
        targets = ([named] if version is not None
                   else versions_of(session, named.team_id, named.name))
        changed = [s for s in targets if (s.withdrawn_at is not None) != withdrawn]
        now = utcnow()
        for submission in changed:
            submission.withdrawn_at = now if withdrawn else None
            session.add(submission)
        if changed:
            session.flush()
            bump_view_generation(session)
        which = (f"version {version}" if version is not None
                 else f"{len(targets)} version(s)")
        verb = "withdrew" if withdrawn else "put back"
        return WithdrawReport(
            entry=label, withdrawn=withdrawn, versions=[s.version for s in changed],
            submission_ids=[s.id or 0 for s in changed],
            message=(f"{verb} {which} of {label}" if changed else
                     f"{which} of {label} already {'withdrawn' if withdrawn else 'shown'}"))


# -- releases and re-evaluation -----------------------------------------------------------------


def queue_submission(bench: Bench, session: Session, submission: Submission,
                     release: ReleaseRecord, *, retry_failed: bool) -> NewJobs:
    """Create a submission's jobs on a release (not yet enqueued: enqueue after commit)."""
    return create_jobs(session, submission.id or 0, release.release_id, _entries(release),
                       max_attempts=bench.settings.job_max_attempts, retry_failed=retry_failed)


def queue_rerun(bench: Bench, session: Session, submission: Submission,
                release: ReleaseRecord, *, only_first: bool = False) -> tuple[int, NewJobs]:
    """Create the jobs of the submission's next run on a release (not yet enqueued).

    Run 0 is the ranked evaluation; a re-run gets the next number (1, 2, ...) and every
    (dataset, track) of the release. With ``only_first``, nothing is created when a re-run
    exists already (returns run 0 and no jobs).
    """
    runs = set(session.exec(select(Job.run).where(Job.submission_id == submission.id,
                                                  Job.release_id == release.release_id)))
    if only_first and any(run > 0 for run in runs):
        return 0, NewJobs()
    run = max(runs, default=0) + 1
    return run, create_jobs(session, submission.id or 0, release.release_id, _entries(release),
                            max_attempts=bench.settings.job_max_attempts, run=run)


def rerun(bench: Bench, submission: str | int, *, release_ref: str = "current",
          by: Team | None = None) -> RerunReport:
    """Queue a re-run of an entry's jobs on a release: the same image digest on the same
    inputs, stored as the next run beside run 0 (never replacing it); the leaderboard compares
    the runs' predictions (``evaluator.store.reproducibility``). Admins only."""
    if by is not None:
        require_admin(by, "re-run an entry")
    with session_scope(bench.engine) as session:
        record = get_release_record(session, release_ref)
        target = get_submission(session, submission)
        run, new = queue_rerun(bench, session, target, record)
        report = RerunReport(release_id=record.release_id, entry=_label(session, target),
                             run=run, jobs_queued=len(new.to_enqueue))
    _enqueue_after_commit(bench, new.to_enqueue)
    return report


def publish_release(bench: Bench, release_ref: str, *, by: Team | None = None,
                    queue_baselines: bool = True, rerun_baselines: bool = True
                    ) -> PublishReport:
    """Make a built release current and queue every baseline on it, twice: run 0 (ranked) and
    a re-run (run 1, once per release) that checks the baseline is reproducible.

    The release is loaded and verified from the release store (``ReleaseNotFound``,
    ``ReleaseIntegrityError``). Results of earlier releases stay as they are, under their own
    release. Publishing the current release again queues only what is missing.
    """
    if by is not None:
        require_admin(by, "publish a release")
    release = load_release(release_ref, bench.settings.releases_dir)
    manifest = release.manifest
    tracks = {name: list(record.tracks) for name, record in manifest.datasets.items()}
    to_enqueue: list[int] = []
    queued: dict[str, int] = {}
    reruns: dict[str, int] = {}
    with session_scope(bench.engine) as session:
        previous = current_release(session)
        record = upsert_release(session, manifest.release_id, label=manifest.label,
                                created_at=manifest.created_utc, tracks=tracks,
                                make_current=True)
        if queue_baselines:
            for submission in _newest_versions(session, select(Submission).where(
                    col(Submission.is_baseline)), hidden_too=True):
                new = queue_submission(bench, session, submission, record, retry_failed=False)
                queued[_label(session, submission)] = len(new.to_enqueue)
                to_enqueue += new.to_enqueue
                if rerun_baselines:
                    _, again = queue_rerun(bench, session, submission, record, only_first=True)
                    reruns[_label(session, submission)] = len(again.to_enqueue)
                    to_enqueue += again.to_enqueue
        report = PublishReport(release_id=manifest.release_id, label=manifest.label,
                               previous_release_id=previous.release_id if previous else None,
                               jobs_queued=queued, reruns_queued=reruns)
    _enqueue_after_commit(bench, to_enqueue)
    return report


def _newest_versions(session: Session, query: Any, *, hidden_too: bool = False
                     ) -> list[Submission]:
    """The newest version of each entry the query selects that is not withdrawn (nor hidden,
    unless ``hidden_too``): superseded versions are not evaluated on new releases. By id."""
    newest: dict[tuple[int, str], Submission] = {}
    query = query.where(col(Submission.withdrawn_at).is_(None))
    if not hidden_too:
        query = query.where(col(Submission.hidden).is_(False))
    for submission in session.exec(query):
        key = (submission.team_id, submission.name)
        if key not in newest or submission.version > newest[key].version:
            newest[key] = submission
    return sorted(newest.values(), key=lambda s: s.id or 0)


def _label(session: Session, submission: Submission) -> str:
    team = session.get(Team, submission.team_id)
    return f"{team.name if team else '?'}/{submission.name}"


def reevaluate(bench: Bench, release_ref: str, *, submission: str | int | None = None,
               all_entries: bool = False, baselines_only: bool = False,
               by: Team | None = None, retry_failed: bool = True) -> ReevaluateReport:
    """Queue entries on a published release: one submission, every baseline, or all entries.

    Each entry runs its recorded image digest again (never a tag). Jobs that already exist on
    that release are left alone, except failed ones when ``retry_failed``. Admins only.
    """
    if by is not None:
        require_admin(by, "re-evaluate")
    chosen = sum([submission is not None, all_entries, baselines_only])
    if chosen != 1:
        raise OrchestratorError("re-evaluate: expected exactly one of --submission S, --all or "
                                f"--baselines, found {chosen}")
    to_enqueue: list[int] = []
    queued: dict[str, int] = {}
    skipped: dict[str, int] = {}
    with session_scope(bench.engine) as session:
        record = get_release_record(session, release_ref)
        if submission is not None:
            targets = [get_submission(session, submission)]
        else:
            query = select(Submission)
            if baselines_only:
                query = query.where(col(Submission.is_baseline))
            targets = _newest_versions(session, query)
        for target in targets:
            new = queue_submission(bench, session, target, record, retry_failed=retry_failed)
            label = _label(session, target)
            queued[label] = len(new.to_enqueue)
            skipped[label] = len(new.skipped)
            to_enqueue += new.to_enqueue
        report = ReevaluateReport(release_id=record.release_id, jobs_queued=queued,
                                  skipped=skipped)
    _enqueue_after_commit(bench, to_enqueue)
    return report


def wait_for(bench: Bench, submission_id: int, *, timeout_s: float,
             poll_s: float = 1.0) -> SubmissionStatus:
    """Poll until a submission has no queued or running job; raises ``BenchError`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = get_status(bench, submission_id, logs=False)
        if status.done:
            return status
        if time.monotonic() > deadline:
            raise BenchError(f"submission #{submission_id}: expected its jobs to finish within "
                             f"{timeout_s:.0f} s, found {status.counts}")
        time.sleep(poll_s)
