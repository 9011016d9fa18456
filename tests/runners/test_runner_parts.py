"""Engine-free parts of the runners: limits, container settings, output checks, outcomes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from evaluator.runners import (
    ContainerFailed,
    EngineUnavailable,
    ImageMissing,
    JobFolderError,
    RunLimits,
    RunOutcome,
    container_settings,
)
from evaluator.runners.jobfs import cap_log, check_output, measure_output, prepare_output_dir


def test_limits_convert_units_and_refuse_nonsense():
    limits = RunLimits(mem_limit_gb=1.5, output_max_mb=2, log_max_kb=3)
    assert limits.mem_limit_bytes == 1536 * 2**20
    assert limits.output_max_bytes == 2 * 2**20
    assert limits.log_max_bytes == 3 * 2**10
    with pytest.raises(ValidationError):
        RunLimits(timeout_s=0)
    with pytest.raises(ValidationError):
        RunLimits(memory_gb=1)  # extra keys are refused, not ignored


def test_container_settings_isolate_and_request_gpus_only_when_assigned(tmp_path):
    limits = RunLimits(cpus=2.5, pids_limit=100, tmp_size_mb=64, mem_limit_gb=2)
    plain = container_settings("sha256:abc", tmp_path / "in", tmp_path / "out", limits, None)
    assert "device_requests" not in plain
    assert plain["network_mode"] == "none"
    assert plain["read_only"] is True
    assert plain["user"] == "10001:10001"
    assert plain["cap_drop"] == ["ALL"]
    assert plain["security_opt"] == ["no-new-privileges"]
    assert plain["mem_limit"] == plain["memswap_limit"] == 2 * 2**30
    assert plain["nano_cpus"] == 2_500_000_000
    assert plain["tmpfs"]["/tmp"].endswith("size=64m,mode=1777")
    assert plain["environment"]["OMP_NUM_THREADS"] == "2"
    mounts = {m["Target"]: m for m in plain["mounts"]}
    assert mounts["/input"]["ReadOnly"] is True
    assert mounts["/output"]["ReadOnly"] is False

    with_gpus = container_settings("sha256:abc", tmp_path / "in", tmp_path / "out", limits,
                                   [0, 2])
    (request,) = with_gpus["device_requests"]
    assert request["DeviceIDs"] == ["0", "2"]
    assert request["Capabilities"] == [["gpu"]]
    assert not request.get("Count")
    assert "device_requests" not in container_settings("x", tmp_path, tmp_path, limits, [])


def test_output_dir_must_be_fresh(tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "predictions.npy").write_bytes(b"old")
    with pytest.raises(JobFolderError, match="expected an empty output folder, found 1 entries"):
        prepare_output_dir(used, owner=None)
    fresh = prepare_output_dir(tmp_path / "a" / "b", owner=(os.getuid(), os.getgid()))
    assert fresh.is_dir()
    assert list(fresh.iterdir()) == []


def test_check_output_judges_size_links_and_presence(tmp_path):
    limits = RunLimits(output_max_mb=1)
    out = tmp_path / "out"
    out.mkdir()
    status, message, _ = check_output(out, limits, None)
    assert (status, message) == ("output_missing", "expected /output/predictions.npy, found no "
                                 "such file (/output holds an empty folder)")

    np.save(out / "predictions.npy", np.zeros((2, 2), np.float32))
    status, _, size = check_output(out, limits, None)
    assert status == "succeeded"
    # counted by the larger of length and allocated blocks
    assert (out / "predictions.npy").stat().st_size <= size <= 64 * 2**10

    (out / "extra.bin").write_bytes(b"\0" * (2 * 2**20))
    status, message, size = check_output(out, limits, None)
    assert status == "output_invalid"
    assert message.startswith("expected at most 1 MB under /output, found 2.0 MB")

    (out / "extra.bin").unlink()
    os.symlink("/etc/passwd", out / "sneaky")
    status, message, _ = check_output(out, limits, None)
    assert status == "output_invalid"
    assert message.endswith("sneaky is a symlink")


def test_sparse_files_count_by_length(tmp_path):
    with open(tmp_path / "sparse.bin", "wb") as handle:
        handle.truncate(50 * 2**20)
    assert measure_output(tmp_path).total_bytes == 50 * 2**20


def test_cap_log_keeps_the_end():
    text, truncated = cap_log(b"a" * 10 + b"END", 5)
    assert (text, truncated) == ("aaEND", True)
    assert cap_log(b"short", 100) == ("short", False)


def test_raise_for_status_maps_statuses_to_errors():
    ok = RunOutcome(status="succeeded", runner="docker", image="i", message="fine")
    ok.raise_for_status()
    with pytest.raises(ImageMissing):
        RunOutcome(status="image_missing", runner="docker", image="i",
                   message="m").raise_for_status()
    with pytest.raises(EngineUnavailable):
        RunOutcome(status="engine_unavailable", runner="docker", image="i",
                   message="m").raise_for_status()
    failed = RunOutcome(status="timed_out", runner="docker", image="i", message="too slow",
                        exit_code=137, log_tail="last words")
    with pytest.raises(ContainerFailed, match="timed_out: too slow") as raised:
        failed.raise_for_status()
    assert raised.value.log_tail == "last words"
    with pytest.raises(ValidationError):
        RunOutcome(status="crashed", runner="docker", image="i", message="m")


def test_missing_input_dir_is_refused(tmp_path):
    from evaluator.runners import run_container

    with pytest.raises(JobFolderError, match="expected an existing input folder, found nothing"):
        run_container("any", tmp_path / "absent", tmp_path / "out", RunLimits())
    assert not Path(tmp_path / "out").exists()
