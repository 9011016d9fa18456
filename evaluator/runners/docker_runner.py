"""Run a submission image as an isolated container on a Docker engine: the real runner.

Each job gets (see docs/ARCHITECTURE.md, "Security model"): no network; a read-only root
filesystem; the input folder bind-mounted read-only at /input; a size-limited tmpfs volume as
/output (output_volume.py: the kernel holds the limit; its plain files are copied to the host's
output folder after the run); a size-limited tmpfs /tmp; no image VOLUME, no HEALTHCHECK; user
10001:10001 whatever the image says; all capabilities dropped; no-new-privileges; pids, memory
(no swap) and CPU limits; a wall-clock limit after which it is killed; GPUs only when assigned,
by device id. The image is resolved to its content id first and the container created from the
id, so a tag moved mid-job cannot swap the code. The containers (job and /output holder) and
the volume are removed whatever happens. An image that cannot start as a job (no command, a
missing entrypoint, a VOLUME line) is ``image_invalid``, the author's to fix.

Nothing else is mounted: not the docker socket, not the release's hidden folder, not other
jobs' folders. Inputs must be readable by uid 10001 (release files are world-readable).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.types import DeviceRequest, LogConfig, Mount

from evaluator.contract import INPUT_ENVIRONMENT
from evaluator.contract.image import image_problem
from evaluator.core.tarstream import TarStreamError
from evaluator.runners.errors import EngineUnavailable, RunnerConfigError
from evaluator.runners.jobfs import (
    CONTAINER_GID,
    CONTAINER_UID,
    OutputValidator,
    cap_log,
    check_input_dir,
    check_output,
    output_too_big_message,
    prepare_output_dir,
)
from evaluator.runners.limits import RunLimits
from evaluator.runners.output_volume import (
    HOLDER_PREFIX,
    collect_output,
    holder_archive,
    output_volume_options,
)
from evaluator.runners.result import RunDurations, RunOutcome, RunStatus

log = logging.getLogger(__name__)

JOB_LABEL = "org.sparedbench.job"
"""Label on every job container; ``remove_job_containers`` finds leftovers by it."""

HOLDER_LABEL = "org.sparedbench.holder"
"""Label of the container that keeps a job's /output volume mounted (output_volume.py)."""

OUTPUT_FULL_SLACK_BYTES = 64 * 2**10
"""An /output within this much of its limit after the job counts as full."""

# ChunkedEncodingError: the engine died while streaming a response (e.g. during a wait).
_ENGINE_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                  requests.exceptions.ChunkedEncodingError)


def docker_client(timeout_s: float = 120.0) -> docker.DockerClient:
    """Connect to the engine named by the environment (DOCKER_HOST, else the local socket).

    Raises ``EngineUnavailable`` when nothing answers.
    """
    _probe_unix_socket(os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except (DockerException, *_ENGINE_ERRORS) as error:
        raise EngineUnavailable(_first_line(error)) from error
    return client


def _probe_unix_socket(host: str) -> None:
    """Raise ``EngineUnavailable`` unless a local engine socket accepts a connection.

    Checked here because docker-py leaks the socket of a failed unix connect (its
    ``UnixHTTPConnection.connect`` never closes it), which a long-lived worker would pile up.
    """
    if not host.startswith("unix://"):
        return
    path = host.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(path)
        except OSError as error:
            raise EngineUnavailable(f"{path}: {error.strerror or error}") from error


HOLDER_MEM_BYTES = 16 * 2**20

# Substrings of the engine's (runc's) start errors that the image causes: its command cannot
# be executed, or a mount point conflicts with what the image holds there. Anything else the
# engine refuses is a configuration problem (``RunnerConfigError``), retried by workers.
_IMAGE_START_ERRORS = ("executable file not found", "exec format error",
                       "no command specified", "chdir to cwd", "onto a file",
                       "too many levels of symbolic links")
_EXEC_ERRORS = ("no such file or directory", "permission denied", "not a directory",
                "is a directory")
_MOUNT_ERRORS = ("read-only file system", "not a directory")


def container_settings(
    image_id: str,
    input_dir: Path,
    output_volume: str,
    limits: RunLimits,
    gpus: list[int] | None,
    environment: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the ``containers.create`` keyword arguments that isolate one job.

    ``output_volume`` is the name of the job's /output volume (``output_volume_options``).
    Pure: no engine needed, so the settings are testable on their own; the docker tests then
    read them back from ``docker inspect``.
    """
    threads = str(max(1, math.floor(limits.cpus)))
    env = {
        # The root filesystem is read-only: anything that wants a home or a cache gets /tmp.
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "SPARED_INPUT_DIR": "/input",
        "SPARED_OUTPUT_DIR": "/output",
        # The CPU quota does not change what os.cpu_count() reports; without these, BLAS and
        # torch start a thread per host core and thrash inside the quota.
        "OMP_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        **INPUT_ENVIRONMENT,
        **(environment or {}),
    }
    settings: dict[str, Any] = {
        "image": image_id,
        "name": f"spared-job-{uuid.uuid4().hex[:12]}",
        "labels": {**(labels or {}), JOB_LABEL: "1"},
        "environment": env,
        "user": f"{CONTAINER_UID}:{CONTAINER_GID}",
        "network_mode": "none",
        "read_only": True,
        "mounts": [
            Mount(target="/input", source=str(input_dir), type="bind", read_only=True),
            # A tmpfs volume of the engine: size-limited by the kernel (output_volume.py).
            Mount(target="/output", source=output_volume, type="volume", read_only=False,
                  no_copy=True),
        ],
        # exec stays allowed on /tmp: JIT compilers (torch.compile, numba) load code from it;
        # nosuid/nodev plus no-new-privileges keep it from being a way up.
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,exec,size={limits.tmp_size_mb}m,mode=1777"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": limits.pids_limit,
        "mem_limit": limits.mem_limit_bytes,
        "memswap_limit": limits.mem_limit_bytes,
        "nano_cpus": int(limits.cpus * 1e9),
        "ipc_mode": "private",
        # An image's HEALTHCHECK would run probes on the engine's CPU, outside the job's quota.
        "healthcheck": {"test": ["NONE"]},
        # The engine keeps a bounded log on disk (two files rotated); a job printing without
        # end cannot fill the disk, and the last log_max_kb survive for the tail.
        "log_config": LogConfig(
            type=LogConfig.types.JSON,
            config={"max-size": f"{max(64, 2 * limits.log_max_kb)}k", "max-file": "2"},
        ),
        "detach": True,
    }
    if gpus:
        settings["device_requests"] = [
            DeviceRequest(device_ids=[str(g) for g in gpus], capabilities=[["gpu"]])
        ]
    return settings


def holder_settings(image_id: str, output_volume: str, program: str,
                    labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``containers.create`` arguments of the holder that keeps ``output_volume`` mounted.

    It runs ``program`` (the holder program, copied in before the start, hence the writable
    root; static, so no variable of the image's environment such as LD_PRELOAD acts on it) from the
    submission's image, as 10001, with no network, capabilities or log, and 16 MB.
    """
    return {
        "image": image_id,
        "name": f"spared-hold-{uuid.uuid4().hex[:12]}",
        "labels": {**(labels or {}), JOB_LABEL: "1", HOLDER_LABEL: "1"},
        "entrypoint": [program],
        "command": [],
        "working_dir": "/",
        "environment": {},
        "user": f"{CONTAINER_UID}:{CONTAINER_GID}",
        "network_mode": "none",
        "mounts": [Mount(target="/output", source=output_volume, type="volume", no_copy=True)],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": 8,
        "mem_limit": HOLDER_MEM_BYTES,
        "memswap_limit": HOLDER_MEM_BYTES,
        "nano_cpus": 100_000_000,
        "healthcheck": {"test": ["NONE"]},
        "log_config": LogConfig(type=LogConfig.types.NONE),
        "detach": True,
    }


def run_container(
    image: str,
    input_dir: Path,
    output_dir: Path,
    limits: RunLimits,
    gpus: list[int] | None = None,
    *,
    client: docker.DockerClient | None = None,
    validate_output: OutputValidator | None = None,
    on_started: Callable[[str], None] | None = None,
    environment: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> RunOutcome:
    """Run ``image`` once on ``input_dir``, isolated, and report what happened.

    Every job-level failure is a status of the returned ``RunOutcome`` (image missing or
    invalid, exit code, time limit, OOM, output missing/too big/invalid, engine gone); nothing
    is raised for those. The job writes to a size-limited tmpfs /output (``output_volume``);
    afterwards its plain files are copied into ``output_dir`` (absent or empty; created, owned
    by the evaluator). ``validate_output(output_dir)`` may raise a ``BenchError`` to mark the
    output invalid. ``on_started(container_id)`` is called once the container runs (a
    debugging and test hook: it runs inside the wall-clock limit). ``client`` is reused when
    given (saves a connection per job). ``environment`` and ``labels`` add to the container's
    (e.g. the job id as a label). Raises ``JobFolderError`` for unusable folders and
    ``RunnerConfigError`` when the engine refuses the settings (e.g. GPUs on an engine without
    a GPU runtime).
    """
    t0 = time.perf_counter()
    input_dir = check_input_dir(input_dir)
    output_dir = prepare_output_dir(output_dir, owner=None)
    if client is not None:
        return _run_with_client(client, image, input_dir, output_dir, limits, gpus,
                                validate_output, on_started, environment, labels, t0)
    try:
        own_client = docker_client()
    except EngineUnavailable as error:
        return RunOutcome(status="engine_unavailable", runner="docker", image=image,
                          message=error.detail,
                          durations=RunDurations(total_s=time.perf_counter() - t0))
    with contextlib.closing(own_client):
        return _run_with_client(own_client, image, input_dir, output_dir, limits, gpus,
                                validate_output, on_started, environment, labels, t0)


class _ImageInvalid(Exception):
    """The engine could not start the job for a reason of the image's (internal signal)."""


def _run_with_client(
    client: docker.DockerClient,
    image: str,
    input_dir: Path,
    output_dir: Path,
    limits: RunLimits,
    gpus: list[int] | None,
    validate_output: OutputValidator | None,
    on_started: Callable[[str], None] | None,
    environment: Mapping[str, str] | None,
    labels: Mapping[str, str] | None,
    t0: float,
) -> RunOutcome:
    """Resolve, check, create, run, collect, judge and remove (see ``run_container``)."""
    phase: dict[str, float] = {}
    facts: dict[str, Any] = {}

    def finish(status: RunStatus, message: str, **extra: Any) -> RunOutcome:
        durations = RunDurations(**phase, total_s=time.perf_counter() - t0)
        return RunOutcome(status=status, runner="docker", image=image, message=message,
                          durations=durations, **facts, **extra)

    try:
        resolved = client.images.get(image)
    except ImageNotFound:
        phase["resolve_s"] = time.perf_counter() - t0
        return finish("image_missing", f"expected image {image!r} on this engine, "
                                       "found no such image")
    except APIError as error:
        if error.status_code in (400, 404):  # an invalid reference is as missing as an absent one
            return finish("image_missing", f"expected image {image!r} on this engine, "
                                           f"found: {_first_line(error)}")
        return finish("engine_unavailable", _first_line(error))
    except _ENGINE_ERRORS as error:
        return finish("engine_unavailable", _first_line(error))
    facts["image_id"] = resolved.id
    repo_digests = resolved.attrs.get("RepoDigests") or []
    facts["repo_digest"] = repo_digests[0] if repo_digests else None
    phase["resolve_s"] = time.perf_counter() - t0
    problem = image_problem(resolved.attrs.get("Config") or {})
    if problem is not None:
        return finish("image_invalid", problem)

    t_create = time.perf_counter()
    job_labels = {**(labels or {}), JOB_LABEL: "1"}
    notes: list[str] = []
    created: list[Container] = []
    volumes: list[Any] = []
    try:
        try:
            volumes.append(client.volumes.create(
                name=f"spared-out-{uuid.uuid4().hex[:12]}", driver="local", labels=job_labels,
                driver_opts=output_volume_options(limits)))
            volume_name = volumes[0].name
            program = f"{HOLDER_PREFIX}{uuid.uuid4().hex[:12]}"
            holder = client.containers.create(**holder_settings(resolved.id, volume_name,
                                                                program, labels))
            created.append(holder)
            holder.put_archive("/", holder_archive(program))
            holder.start()
            settings = container_settings(resolved.id, input_dir, volume_name, limits, gpus,
                                          environment, labels)
            container = client.containers.create(**settings)
            created.append(container)
            phase["create_s"] = time.perf_counter() - t_create
            status, message, extra = _run_and_collect(
                container, holder, image, input_dir, output_dir, limits, gpus, on_started,
                validate_output, phase)
        except _ImageInvalid as invalid:
            status, message, extra = "image_invalid", str(invalid), {}
        except APIError as error:
            detail = _api_detail(error)
            if not _image_caused(detail, gpus):
                raise RunnerConfigError(image, detail) from error
            status, message, extra = "image_invalid", _image_message(detail, input_dir), {}
        except _ENGINE_ERRORS as error:
            status, message, extra = "engine_unavailable", _first_line(error), {}
    finally:
        t_remove = time.perf_counter()
        for leftover in reversed(created):
            _remove(leftover, notes)
        for volume in volumes:
            _remove_volume(volume, notes)
        phase["remove_s"] = time.perf_counter() - t_remove
    return finish(status, message, notes=notes, **extra)


def _remove_volume(volume: Any, notes: list[str]) -> None:
    try:
        volume.remove(force=True)
    except NotFound:
        pass
    except (APIError, *_ENGINE_ERRORS) as error:
        log.error("job volume %s could not be removed: %s", volume.name, error)
        notes.append(f"volume {volume.name} could not be removed: {_first_line(error)}")


def _remove(container: Container, notes: list[str]) -> None:
    try:
        container.remove(force=True, v=True)
    except NotFound:
        pass
    except (APIError, *_ENGINE_ERRORS) as error:
        log.error("job container %s could not be removed: %s", container.id[:12], error)
        notes.append(f"container {container.id[:12]} could not be removed: "
                     f"{_first_line(error)}")


def _image_caused(detail: str, gpus: list[int] | None) -> bool:
    """True when an engine error at create/start is the image's doing, not the settings'."""
    lowered = detail.lower()
    if gpus and any(word in lowered for word in ("gpu", "device driver", "nvidia")):
        return False
    if any(pattern in lowered for pattern in _IMAGE_START_ERRORS):
        return True
    if 'exec: "' in lowered and any(pattern in lowered for pattern in _EXEC_ERRORS):
        return True  # the entrypoint: missing, not executable, a folder
    # a mount into the image's own root filesystem ("rootfs at ...", overlay's ".../merged/...")
    into_rootfs = "rootfs at" in lowered or "/merged/" in lowered
    return into_rootfs and any(pattern in lowered for pattern in _MOUNT_ERRORS)


def _image_message(detail: str, input_dir: Path) -> str:
    """The author's message for an image the engine could not start (no host paths)."""
    shown = detail.replace(str(input_dir), "/input")
    # a path inside the container's root filesystem is shown as the container sees it
    shown = re.sub(r"/\S*?/overlay2/[0-9a-f]+/merged(/[^\s,:\"']*)", r"\1", shown)
    shown = re.sub(r"/var/lib/docker/[^\s,:\"']*", "<engine path>", shown)
    return (f"expected the image to start as a job (as user {CONTAINER_UID}, read-only root, "
            f"/input read-only), found the engine refusing it: {shown[:400]}")


def _run_and_collect(
    container: Container,
    holder: Container,
    image: str,
    input_dir: Path,
    output_dir: Path,
    limits: RunLimits,
    gpus: list[int] | None,
    on_started: Callable[[str], None] | None,
    validate_output: OutputValidator | None,
    phase: dict[str, float],
) -> tuple[RunStatus, str, dict[str, Any]]:
    """Start, watch the clock, kill if needed, copy /output out, judge; the caller removes."""
    t_start = time.perf_counter()
    try:
        container.start()
    except APIError as error:
        detail = _api_detail(error)
        if _image_caused(detail, gpus):
            raise _ImageInvalid(_image_message(detail, input_dir)) from error
        raise RunnerConfigError(image, detail) from error
    except _ENGINE_ERRORS as error:
        return "engine_unavailable", _first_line(error), {}

    # The blocking wait lives in a thread so this one can enforce the deadline while it runs;
    # the wait returns as soon as the container exits (no polling delay).
    waited: dict[str, Any] = {}

    def wait() -> None:
        try:
            waited["result"] = container.wait(timeout=limits.timeout_s + 120)
        except Exception as error:  # handed to the main thread, which decides
            waited["error"] = error

    waiter = threading.Thread(target=wait, name=f"wait-{container.id[:12]}", daemon=True)
    waiter.start()
    if on_started is not None:
        on_started(container.id)
    deadline = t_start + limits.timeout_s
    killed_for: str | None = None
    waiter.join(max(0.0, deadline - time.perf_counter()))
    if waiter.is_alive():
        killed_for = "time"
        _kill(container)
        waiter.join(60)
    phase["run_s"] = time.perf_counter() - t_start

    t_collect = time.perf_counter()
    try:
        if "error" in waited and not isinstance(waited["error"], _ENGINE_ERRORS):
            raise waited["error"]
        if "error" in waited:
            return "engine_unavailable", _first_line(waited["error"]), {}
        container.reload()
        state = container.attrs["State"]
        raw_log = container.logs(stdout=True, stderr=True)
        exit_code = state.get("ExitCode")
        log_tail, log_truncated = cap_log(raw_log, limits.log_max_bytes)
        extra: dict[str, Any] = {"exit_code": exit_code, "log_tail": log_tail,
                                 "log_truncated": log_truncated}
        chunks, _stat = holder.get_archive("/output", chunk_size=1 << 20)
        try:
            collected = collect_output(chunks, output_dir, limits)
        finally:
            with contextlib.suppress(Exception):
                chunks.close()
    except _ENGINE_ERRORS as error:
        return "engine_unavailable", _first_line(error), {}
    except TarStreamError as error:
        phase["collect_s"] = time.perf_counter() - t_collect
        return "output_invalid", f"expected /output readable as files, found: {error}", extra
    try:
        extra["output_bytes"] = collected.total_bytes
        full = collected.allocated_bytes >= limits.output_max_bytes - OUTPUT_FULL_SLACK_BYTES
        status, message = _judge(state, killed_for, limits)
        if collected.unsafe is not None and status in (None, "exit_nonzero"):
            return "output_invalid", f"expected only plain files and folders under /output, " \
                f"found {collected.unsafe}", extra
        if collected.too_big:
            return "output_invalid", output_too_big_message(limits, collected.total_bytes,
                                                            killed=False), extra
        if status == "exit_nonzero" and full:
            return "output_invalid", (f"expected at most {limits.output_max_mb:g} MB under "
                                      f"/output, found /output full (writes past the limit "
                                      f"failed) and the job exiting with {exit_code}"), extra
        if status is None:
            status, message, extra["output_bytes"] = check_output(output_dir, limits,
                                                                  validate_output)
        return status, message, extra
    finally:
        phase["collect_s"] = time.perf_counter() - t_collect


def _judge(
    state: dict[str, Any], killed_for: str | None, limits: RunLimits
) -> tuple[RunStatus | None, str]:
    """Map how the container ended to a status; ``None`` means "exited 0, check the output"."""
    exit_code = state.get("ExitCode")
    if killed_for == "time":
        return "timed_out", (f"expected the job to finish within {limits.timeout_s:g} s, found "
                             "it still running; it was killed")
    if state.get("OOMKilled") and exit_code != 0:
        return "out_of_memory", (f"expected the job to stay within {limits.mem_limit_gb:g} GB of "
                                 "memory (no swap; /tmp counts too), found it killed by the "
                                 "kernel's out-of-memory killer")
    if exit_code != 0:
        hint = " (killed by SIGKILL)" if exit_code == 137 else ""
        return "exit_nonzero", f"expected exit code 0, found {exit_code}{hint}"
    return None, ""


def _kill(container: Container) -> None:
    try:
        container.kill()
    except APIError as error:
        # 409: it exited on its own between the check and the kill
        if error.status_code != 409:
            raise


def remove_job_containers(client: docker.DockerClient) -> list[str]:
    """Remove every job container and /output volume left behind (an evaluator killed
    mid-job); return the containers' ids."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": JOB_LABEL}):
        try:
            container.remove(force=True, v=True)
        except NotFound:
            continue
        removed.append(container.id)
    for volume in client.volumes.list(filters={"label": JOB_LABEL}):
        with contextlib.suppress(NotFound, APIError):
            volume.remove(force=True)
    return removed


def _api_detail(error: APIError) -> str:
    """The engine's own explanation of a refusal (without the request's URL), one line."""
    explanation = error.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    text = str(explanation or "").strip()
    return text.splitlines()[0] if text else _first_line(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
