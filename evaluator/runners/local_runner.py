"""Run a submission as a plain local process: for development only, with NO isolation.

The command runs as the evaluator's own user, with its network, its filesystem (the hidden
truth, the database and every other file that user can read) and no memory, CPU or process
limits. Only the wall-clock limit, the output checks and the log cap apply. Use it for
trusted code (the baselines, your own model) on machines without a Docker engine; never for
submissions. Every run logs a warning saying so.

The command sees ``INPUT_DIR`` and ``OUTPUT_DIR`` (also as ``SPARED_INPUT_DIR`` /
``SPARED_OUTPUT_DIR``) in its environment, in place of the container's /input and /output,
and runs with ``OUTPUT_DIR`` as its working directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from evaluator.contract import INPUT_ENVIRONMENT
from evaluator.runners.jobfs import (
    OutputValidator,
    cap_log,
    check_input_dir,
    check_output,
    measure_output,
    output_too_big_message,
    prepare_output_dir,
)
from evaluator.runners.limits import RunLimits
from evaluator.runners.result import RunDurations, RunOutcome, RunStatus

log = logging.getLogger(__name__)

OUTPUT_POLL_S = 0.5


def run_local(
    command: str | Sequence[str],
    input_dir: Path,
    output_dir: Path,
    limits: RunLimits,
    gpus: list[int] | None = None,
    *,
    validate_output: OutputValidator | None = None,
    environment: Mapping[str, str] | None = None,
) -> RunOutcome:
    """Run ``command`` as a subprocess on ``input_dir``; NO isolation (see the module doc).

    ``command`` is an argv list or a string split with shlex. ``gpus`` sets
    ``CUDA_VISIBLE_DEVICES`` (empty when None: no GPU). Applies ``limits.timeout_s`` (the whole
    process group is killed), ``output_max_mb`` (checked while it runs) and ``log_max_kb``;
    ignores the memory, CPU, pids and /tmp limits. Statuses as for ``run_container``; a
    command that cannot be found is ``image_missing``.
    """
    t0 = time.perf_counter()
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    label = shlex.join(argv)
    log.warning("local runner: %s runs with NO isolation (no container, no network, memory "
                "or filesystem limits); use it only for trusted code", label)
    input_dir = check_input_dir(input_dir)
    output_dir = prepare_output_dir(output_dir, owner=None)
    env = {
        **os.environ,
        "INPUT_DIR": str(input_dir),
        "OUTPUT_DIR": str(output_dir),
        "SPARED_INPUT_DIR": str(input_dir),
        "SPARED_OUTPUT_DIR": str(output_dir),
        "CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in gpus) if gpus else "",
        **INPUT_ENVIRONMENT,
        **(environment or {}),
    }
    phase: dict[str, float] = {}

    def finish(status: RunStatus, message: str, **extra: Any) -> RunOutcome:
        durations = RunDurations(**phase, total_s=time.perf_counter() - t0)
        return RunOutcome(status=status, runner="local", image=label, message=message,
                          durations=durations, notes=["local runner: no isolation"],
                          **extra)

    with tempfile.TemporaryFile(prefix="spared-local-log-") as log_file:
        t_start = time.perf_counter()
        try:
            process = subprocess.Popen(
                argv, cwd=output_dir, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        except (FileNotFoundError, PermissionError) as error:
            return finish("image_missing", f"expected an executable command {argv[0]!r}, "
                                           f"found: {error.strerror}")
        killed_for = _watch(process, output_dir, limits)
        phase["run_s"] = time.perf_counter() - t_start

        t_collect = time.perf_counter()
        log_tail, log_truncated = _read_tail(log_file, limits.log_max_bytes)
        exit_code = process.returncode
        extra: dict[str, Any] = {"exit_code": exit_code, "log_tail": log_tail,
                                    "log_truncated": log_truncated}
        if killed_for == "time":
            status: RunStatus = "timed_out"
            message = (f"expected the job to finish within {limits.timeout_s:g} s, found it "
                       "still running; its process group was killed")
            output_bytes = measure_output(output_dir).total_bytes
        elif killed_for == "output":
            status = "output_invalid"
            output_bytes = measure_output(output_dir).total_bytes
            message = output_too_big_message(limits, output_bytes, killed=True)
        elif exit_code != 0:
            status = "exit_nonzero"
            message = f"expected exit code 0, found {exit_code}"
            output_bytes = measure_output(output_dir).total_bytes
        else:
            status, message, output_bytes = check_output(output_dir, limits, validate_output)
        phase["collect_s"] = time.perf_counter() - t_collect
    return finish(status, message, output_bytes=output_bytes, **extra)


def _watch(process: subprocess.Popen[bytes], output_dir: Path, limits: RunLimits) -> str | None:
    """Wait for the process; kill its group past the deadline or the output size limit."""
    deadline = time.perf_counter() + limits.timeout_s
    while True:
        remaining = deadline - time.perf_counter()
        try:
            process.wait(timeout=max(0.0, min(OUTPUT_POLL_S, remaining)))
            return None
        except subprocess.TimeoutExpired:
            pass
        if time.perf_counter() >= deadline:
            reason = "time"
        elif measure_output(output_dir, stop_after_bytes=limits.output_max_bytes).total_bytes \
                > limits.output_max_bytes:
            reason = "output"
        else:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return reason


def _read_tail(handle: BinaryIO, max_bytes: int) -> tuple[str, bool]:
    """Read the last ``max_bytes`` of the log file; return (text, truncated)."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - max_bytes))
    text, _ = cap_log(handle.read(), max_bytes)
    return text, size > max_bytes
