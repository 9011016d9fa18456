"""A worker: consumes job ids from the queue, one container per assigned GPU (or CPU-only).

``spared-bench worker [--gpus 0,1]`` runs a Huey consumer with one thread per GPU (one thread
when CPU-only); each thread takes a GPU from the pool for the length of a job, so a job never
shares its GPU. Jobs of one submission are spread over workers by the queue itself: a thread
takes the next message only when it is free.

Faults:
- killed (SIGKILL) mid-job: its heartbeats stop; after ``lease_s`` any live worker puts the job
  back on the queue (``requeue_stale``), and a restarted worker of the same name does so at
  once and removes the containers its predecessor left. The result is stored once (unique
  entry, ON CONFLICT DO NOTHING).
- engine down before a job: the job is not claimed (no attempt spent); it goes back on the
  queue after ``engine_backoff_s`` for this or another worker. Engine lost mid-job: the attempt
  fails as infrastructure and the job is retried up to its ``max_attempts``.
- database briefly down: every write is retried (``with_retry``) for up to ``db_wait_s``; a
  result is never dropped (if the database stays away, the job's lease expires and it reruns).
- a message lost with a killed Redis or an enqueue that failed: when the queue is empty, jobs
  still ``queued`` in the database for longer than ``lease_s`` are enqueued again (duplicates are
  harmless: only one claim succeeds).
Worker names must be unique among running workers (default: the host name).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue as stdqueue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evaluator.core.devices import describe_gpus
from evaluator.core.settings import Settings
from evaluator.core.text import clean_text
from evaluator.datasets.release import Release, ReleaseManifest, load_release
from evaluator.orchestrator.blobcache import BlobCache
from evaluator.orchestrator.errors import QueueUnavailable
from evaluator.orchestrator.execution import (
    WORKER_LABEL,
    ExecutionReport,
    execute_claim,
    scrub_paths,
)
from evaluator.orchestrator.images import ensure_image
from evaluator.orchestrator.queue import JobQueue
from evaluator.orchestrator.registry import TokenSigner
from evaluator.runners import EngineUnavailable, RunLimits, docker_client
from evaluator.store import (
    Claim,
    DatabaseUnavailable,
    FailureKind,
    beat_worker,
    claim_job,
    complete_job,
    fail_job,
    fail_unclaimable,
    heartbeat,
    mark_container_started,
    open_store,
    queued_job_ids,
    register_worker,
    requeue_stale,
    requeue_worker_jobs,
    stop_worker,
    utcnow,
    with_retry,
)

log = logging.getLogger(__name__)


class WorkerOptions(BaseModel):
    """How a worker runs: identity, GPUs, lease timing, limits of each job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default_factory=socket.gethostname, min_length=1, max_length=200)
    gpus: tuple[int, ...] = ()
    heartbeat_s: float = Field(default=5.0, gt=0)
    lease_s: float = Field(default=60.0, gt=0)
    reap_interval_s: float = Field(default=10.0, gt=0)
    engine_backoff_s: float = Field(default=5.0, ge=0)
    retry_delay_s: float = Field(default=5.0, ge=0)
    db_wait_s: float = Field(default=600.0, gt=0)
    poll_max_s: float = Field(default=1.0, gt=0)
    limits: RunLimits = Field(default_factory=RunLimits)

    @property
    def slots(self) -> int:
        """Jobs run at once: one per GPU, one when CPU-only."""
        return max(1, len(self.gpus))


class _Heartbeat:
    """Renews a claim's lease every ``interval_s`` in a thread; notes when the lease is lost."""

    def __init__(self, worker: Worker, claim: Claim, interval_s: float) -> None:
        self.worker = worker
        self.claim = claim
        self.interval_s = interval_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{claim.job_id}",
                                        daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                held = with_retry(self.worker.engine, lambda s: heartbeat(s, self.claim),
                                  wait_s=self.interval_s * 3, what="heartbeat")
            except Exception as error:  # the next beat tries again; the lease covers a few
                log.warning("job %s: heartbeat failed: %s", self.claim.job_id, error)
                continue
            if not held and not self.lost:
                self.lost = True
                log.warning("job %s: lease lost (the job was taken back); its result, if "
                            "any, is kept only if no other run stored one", self.claim.job_id)


class Worker:
    """Consumes the queue (see the module doc); ``run()`` blocks until SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, options: WorkerOptions, *,
                 blobs: BlobCache | None = None) -> None:
        """``blobs``: fetch each job's release files from the service into this cache (a
        worker without the service's release folder); None reads ``settings.releases_dir``."""
        self.settings = settings
        self.options = options
        self.blobs = blobs
        self._manifests: dict[str, ReleaseManifest] = {}
        self.engine = open_store(settings.resolved_database_url)
        self.queue = JobQueue(settings.resolved_queue_url)
        self.queue.set_handler(self.handle)
        self._gpu_pool: stdqueue.Queue[int] = stdqueue.Queue()
        for gpu in options.gpus:
            self._gpu_pool.put(gpu)
        self._live_tokens: set[str] = set()
        self._lock = threading.Lock()
        self._releases: dict[str, Release] = {}
        self._client: Any = None
        self._stop = threading.Event()
        self.jobs_done = 0

    # -- paths and shared resources -------------------------------------------------------------

    @property
    def staging_root(self) -> Path:
        """Staged inputs, shared by the workers of a machine (atomic, read-only folders)."""
        return self.settings.home / "staging"

    @property
    def work_dir(self) -> Path:
        """This worker's scratch folder (job outputs, removed after each job)."""
        return self.settings.home / "work" / self.options.name.replace("/", "_")

    @property
    def images_dir(self) -> Path:
        """Archives of submitted images (loaded into this worker's engine when missing)."""
        return self.settings.home / "images"

    def _release(self, release_id: str) -> Release:
        with self._lock:
            release = self._releases.get(release_id)
        if release is None:
            # Verified once per process: every file's hash is checked on load.
            release = load_release(release_id, self.settings.releases_dir)
            with self._lock:
                self._releases[release_id] = release
        return release

    @contextlib.contextmanager
    def _job_release(self, claim: Claim, timings: dict[str, float]) -> Iterator[Release]:
        """The release a job runs on: the local release store's, or (with a blob cache) the
        job's files fetched from the service by content address, pinned until the job ends.
        Records ``data_fetch_s`` and ``data_fetched_mb`` in ``timings``."""
        if self.blobs is None:
            yield self._release(claim.release_id)
            return
        t0 = time.perf_counter()
        before = self.blobs.fetched_bytes
        with self._lock:
            manifest = self._manifests.get(claim.release_id)
        if manifest is None:
            manifest = self.blobs.manifest(claim.release_id)
            with self._lock:
                self._manifests[claim.release_id] = manifest
        with self.blobs.job_release(manifest, claim.dataset, claim.track) as release:
            timings["data_fetch_s"] = time.perf_counter() - t0
            # with several slots, fetches of other jobs may overlap: an upper bound then
            timings["data_fetched_mb"] = (self.blobs.fetched_bytes - before) / 1e6
            yield release

    def docker(self) -> Any:
        """This worker's Docker client (created on first use; None while no engine answers)."""
        with self._lock:
            if self._client is not None:
                return self._client
            try:
                self._client = docker_client()
            except EngineUnavailable:
                return None
            return self._client

    def engine_answers(self) -> bool:
        """True when this worker's Docker engine answers a ping."""
        client = self.docker()
        if client is None:
            return False
        try:
            return bool(client.ping())
        except Exception:
            return False

    @contextlib.contextmanager
    def _gpus(self) -> Iterator[tuple[int, ...]]:
        if not self.options.gpus:
            yield ()
            return
        gpu = self._gpu_pool.get()
        try:
            yield (gpu,)
        finally:
            self._gpu_pool.put(gpu)

    # -- one job ---------------------------------------------------------------------------------

    def handle(self, job_id: int) -> None:
        """Run one dequeued job id to its end (the queue's handler; never raises)."""
        try:
            with self._gpus() as gpus:
                self._handle(job_id, gpus)
        except Exception:
            # The job stays as the database says: running jobs are reaped after their lease.
            log.exception("job %s: worker error", job_id)

    def _handle(self, job_id: int, gpus: tuple[int, ...]) -> None:
        if not self.engine_answers():
            log.warning("job %s: no Docker engine answers on this worker; putting it back on "
                        "the queue for %.0f s", job_id, self.options.engine_backoff_s)
            self._enqueue([job_id], delay_s=self.options.engine_backoff_s)
            self._stop.wait(self.options.engine_backoff_s)
            return
        t_claim = time.perf_counter()
        try:
            claim = with_retry(self.engine,
                               lambda s: claim_job(s, job_id, self.options.name, gpus),
                               wait_s=self.options.db_wait_s, what=f"claim job {job_id}")
        except DatabaseUnavailable:
            raise
        except Exception as error:
            # Not cured by waiting (a constraint, a bug): left queued, the job would be
            # enqueued, refused and logged again forever. It fails once, loudly.
            log.exception("job %s: the claim failed; failing the job", job_id)
            reason = _short_error(error)
            with_retry(self.engine, lambda s: fail_unclaimable(s, job_id, reason),
                       wait_s=self.options.db_wait_s, what=f"fail unclaimable job {job_id}")
            return
        claim_s = time.perf_counter() - t_claim
        if claim is None:
            log.info("job %s: not claimable (already taken or final); skipped", job_id)
            return
        with self._lock:
            self._live_tokens.add(claim.lease_token)
        try:
            report = self._execute(claim)
            report.timings["claim_s"] = claim_s
            self._finish(claim, report)
        finally:
            with self._lock:
                self._live_tokens.discard(claim.lease_token)

    def _execute(self, claim: Claim) -> ExecutionReport:
        t0 = time.perf_counter()
        queue_wait_s = (claim.started_at - claim.queued_at).total_seconds()
        log.info("job %s: %s/%s of submission %s, attempt %s, gpus %s", claim.job_id,
                 claim.dataset, claim.track, claim.submission_id, claim.attempt,
                 list(claim.gpus) or "none")

        def started(at: datetime) -> None:
            try:
                with_retry(self.engine, lambda s: mark_container_started(s, claim, at),
                           wait_s=10, what="container start")
            except Exception as error:  # a missing timestamp is not worth failing the job
                log.warning("job %s: container start not recorded: %s", claim.job_id, error)

        with _Heartbeat(self, claim, self.options.heartbeat_s):
            client = self.docker()
            image_t0 = time.perf_counter()
            problem = ensure_image(client, claim.image_digest, self.images_dir,
                                   image_ref=claim.image_ref,
                                   registry_token=self._registry_token())
            # pulling from the registry or loading an archive; ~0 when the engine has it
            image_fetch_s = time.perf_counter() - image_t0
            if problem is not None:
                report = ExecutionReport("infra", "image_missing", problem)
            else:
                fetch: dict[str, float] = {}
                try:
                    with self._job_release(claim, fetch) as release:
                        report = execute_claim(
                            claim, release, limits=self.options.limits,
                            staging_root=self.staging_root, work_dir=self.work_dir,
                            seed=self.settings.seed, gpus_told=self.settings.job_gpus,
                            client=client, on_container_started=started,
                            predictions_home=self.settings.home)
                except Exception as error:  # the release could not be read or fetched
                    report = ExecutionReport("infra", "evaluator_error",
                                             f"release {claim.release_id[:12]}: {error}")
                report.timings.update(fetch)
        # The message reaches the author (and the public list of incomplete entries): no
        # host paths of the staging, work or image folders.
        report.message = scrub_paths(report.message, self.settings.home)
        report.timings["queue_wait_s"] = queue_wait_s
        report.timings["worker_s"] = time.perf_counter() - t0
        report.timings["image_fetch_s"] = image_fetch_s
        return report

    def _registry_token(self) -> Callable[[str], str] | None:
        """Pull tokens for the submission registry: from the service (a worker with
        ``--server``), else signed with the registry key if this worker holds it."""
        if self.blobs is not None:
            return self.blobs.registry_token
        path = self.settings.registry_key_path
        if not path.is_file():
            return None
        signer = TokenSigner.load_or_create(path)
        name = self.options.name
        return lambda repository: signer.token(f"worker:{name}", [(repository, ["pull"])])

    def _finish(self, claim: Claim, report: ExecutionReport) -> None:
        """Record the job's end; a store that refuses the record still gets a clean one.

        A database that stays away (``DatabaseUnavailable``) propagates: the job stays
        ``running`` and its lease expires. Any other store error (a value the store refuses, a
        constraint) is not cured by waiting: the result is stored again without the author's
        log and model card, and if the store refuses that too, the job fails for good with a
        short message (never left ``running`` to be retried as an infrastructure failure).
        """
        try:
            self._record(claim, report)
        except DatabaseUnavailable:
            raise
        except Exception as error:
            log.exception("job %s: the store refused its record", claim.job_id)
            self._record_refused(claim, report, error)
        self.jobs_done += 1

    def _record_refused(self, claim: Claim, report: ExecutionReport,
                        error: Exception) -> None:
        reason = _short_error(error)
        if report.kind == "succeeded" and report.score is not None:
            stripped = ExecutionReport(
                "succeeded", report.status,
                f"stored without the submission's log and model card (the store refused "
                f"them: {reason})", score=report.score, timings=report.timings)
            try:
                self._record(claim, stripped)
                return
            except DatabaseUnavailable:
                raise
            except Exception as again:
                log.exception("job %s: the store refused its result again", claim.job_id)
                reason = _short_error(again)
        message = f"the job's record could not be stored: {reason}"
        outcome = with_retry(
            self.engine,
            lambda s: fail_job(s, claim, "infra", message, outcome="store_error",
                               timings=report.timings, final=True),
            wait_s=self.options.db_wait_s, what=f"record failure of job {claim.job_id}")
        log.info("job %s: store_error -> %s", claim.job_id, outcome.status)

    def _record(self, claim: Claim, report: ExecutionReport) -> None:
        timings = report.timings
        if report.kind == "succeeded" and report.score is not None:
            score = report.score
            stored = with_retry(
                self.engine,
                lambda s: complete_job(s, claim, score, message=report.message,
                                       log_text=report.log_text, timings=timings,
                                       model_card=report.model_card),
                wait_s=self.options.db_wait_s, what=f"store result of job {claim.job_id}")
            log.info("job %s: succeeded (mse %.4f)%s", claim.job_id, score.metrics.mse,
                     "" if stored else "; a result was already stored, this one is dropped")
        else:
            kind: FailureKind = "model" if report.kind == "model" else "infra"
            outcome = with_retry(
                self.engine,
                lambda s: fail_job(s, claim, kind, report.message, outcome=report.status,
                                   log_text=report.log_text, timings=timings),
                wait_s=self.options.db_wait_s, what=f"record failure of job {claim.job_id}")
            log.info("job %s: %s (%s): %s -> %s", claim.job_id, report.status, kind,
                     report.message, outcome.status)
            if outcome.status == "queued":
                self._enqueue([claim.job_id], delay_s=self.options.retry_delay_s)

    def _enqueue(self, job_ids: list[int], *, delay_s: float = 0.0) -> None:
        if not job_ids:
            return
        try:
            self.queue.enqueue(job_ids, delay_s=delay_s)
        except QueueUnavailable as error:
            # The database still says queued: the resync below enqueues them again later.
            log.warning("%s", error)

    # -- upkeep ------------------------------------------------------------------------------------

    def recover(self) -> list[int]:
        """Take back this name's jobs left by a dead predecessor, and remove its containers.

        Returns the job ids put back on the queue.
        """
        with self._lock:
            keep = set(self._live_tokens)
        moved = with_retry(self.engine,
                           lambda s: requeue_worker_jobs(s, self.options.name, keep),
                           wait_s=self.options.db_wait_s, what="recover jobs")
        if not keep:
            self._remove_leftover_containers()
        requeued = [m.job_id for m in moved if m.status == "queued"]
        for m in moved:
            log.warning("job %s: %s", m.job_id, m.message)
        self._enqueue(requeued)
        return requeued

    def _remove_leftover_containers(self) -> None:
        client = self.docker()
        if client is None:
            return
        try:
            leftovers = client.containers.list(
                all=True, filters={"label": f"{WORKER_LABEL}={self.options.name}"})
            for container in leftovers:
                log.warning("removing container %s left by a previous run of worker %s",
                            container.short_id, self.options.name)
                container.remove(force=True, v=True)
            # Their /output volumes (tmpfs: memory, not disk) carry the same labels.
            for volume in client.volumes.list(
                    filters={"label": f"{WORKER_LABEL}={self.options.name}"}):
                volume.remove(force=True)
        except Exception as error:
            log.warning("could not remove leftover containers: %s", error)

    def reap(self) -> list[int]:
        """Requeue jobs whose worker stopped beating, and re-enqueue lost queued jobs.

        Returns the job ids enqueued.
        """
        moved = with_retry(self.engine,
                           lambda s: requeue_stale(s, lease_s=self.options.lease_s),
                           wait_s=self.options.db_wait_s, what="requeue stale jobs")
        for m in moved:
            log.warning("job %s: %s", m.job_id, m.message)
        enqueued = [m.job_id for m in moved if m.status == "queued"]
        self._enqueue(enqueued)
        try:
            idle = self.queue.pending() == 0 and self.queue.scheduled() == 0
        except Exception:
            idle = False
        if idle:
            cutoff = utcnow() - timedelta(seconds=self.options.lease_s)
            lost = with_retry(self.engine, lambda s: queued_job_ids(s, older_than=cutoff),
                              wait_s=self.options.db_wait_s, what="find lost jobs")
            lost = [j for j in lost if j not in enqueued]
            if lost:
                log.warning("re-enqueueing %d job(s) queued in the database but not on the "
                            "queue: %s", len(lost), lost[:10])
                self._enqueue(lost)
                enqueued += lost
        return enqueued

    def register(self) -> None:
        """Write this worker's record (host, GPUs, slots) for ``spared-bench workers``."""
        options = self.options
        gpu_ids = ",".join(str(g) for g in options.gpus)
        with_retry(self.engine, lambda s: register_worker(
            s, options.name, host=socket.gethostname(), pid=os.getpid(), gpu_ids=gpu_ids,
            gpu_names=describe_gpus(options.gpus), slots=options.slots),
            wait_s=self.options.db_wait_s, what="register worker")

    def beat(self) -> None:
        """Record that this worker is alive (its record's ``heartbeat_at``)."""
        if not with_retry(self.engine, lambda s: beat_worker(s, self.options.name),
                          wait_s=self.options.reap_interval_s, what="worker heartbeat"):
            self.register()

    def _upkeep_loop(self) -> None:
        while not self._stop.wait(self.options.reap_interval_s):
            try:
                self.beat()
            except Exception as error:
                log.warning("worker heartbeat failed (retried next round): %s", error)
            try:
                self.reap()
            except Exception as error:
                log.warning("upkeep failed (retried next round): %s", error)

    def run(self) -> None:
        """Recover, start upkeep, consume the queue until SIGTERM (graceful) or SIGINT."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.register()
        requeued = self.recover()
        log.info("worker %s: %d slot(s), gpus %s, queue %s, %d job(s) recovered",
                 self.options.name, self.options.slots, list(self.options.gpus) or "none",
                 self.queue.kind, len(requeued))
        upkeep = threading.Thread(target=self._upkeep_loop, name="upkeep", daemon=True)
        upkeep.start()
        consumer = self.queue.consumer(workers=self.options.slots,
                                       max_delay_s=self.options.poll_max_s)
        try:
            consumer.run()
        finally:
            self._stop.set()
            upkeep.join(timeout=5)
            try:
                with_retry(self.engine, lambda s: stop_worker(s, self.options.name), wait_s=5,
                           what="record worker stop")
            except Exception as error:  # shown as silent once its heartbeat is old
                log.warning("worker stop not recorded: %s", error)


def _short_error(error: BaseException, limit: int = 300) -> str:
    """``Type: first line`` of an error, at most ``limit`` characters (never its parameters)."""
    orig = getattr(error, "orig", None) or error
    lines = str(orig).strip().splitlines()
    text = f"{type(orig).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return clean_text(text if len(text) <= limit else text[:limit - 1] + "…")
