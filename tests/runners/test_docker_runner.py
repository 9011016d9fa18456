"""The docker runner against a real engine, with well-behaved and hostile submission images.

Each hostile image tries one way out (tests/runners/images/<name>/main.py says which); the tests
check both what the runner reports and what the container could see or do.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluator.core.errors import BenchError
from evaluator.runners import (
    ContainerFailed,
    EngineUnavailable,
    ImageMissing,
    RunLimits,
    RunnerConfigError,
    RunOutcome,
    run_container,
)
from tests.runners.conftest import BASE_IMAGE, SESSION_LABELS, job_containers

pytestmark = pytest.mark.docker


def run(
    tag: str, job_dirs: tuple[Path, Path], limits: RunLimits, **kwargs: Any
) -> RunOutcome:
    input_dir, output_dir = job_dirs
    return run_container(tag, input_dir, output_dir, limits, labels=SESSION_LABELS, **kwargs)


def docker_inspect(container_id: str) -> dict[str, Any]:
    """The engine's own view of a container, through the CLI (not the SDK under test)."""
    done = subprocess.run(["docker", "inspect", container_id], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)[0]


def container_exists(container_id: str) -> bool:
    done = subprocess.run(["docker", "inspect", container_id], capture_output=True, check=False)
    return done.returncode == 0


def test_well_behaved_image_succeeds(test_images, job_dirs, small_limits):
    outcome = run(test_images["well_behaved"], job_dirs, small_limits)

    assert outcome.status == "succeeded", outcome
    assert outcome.exit_code == 0
    predictions = np.load(job_dirs[1] / "predictions.npy")
    assert predictions.shape == (4, 3)
    assert predictions.dtype == np.float32
    # copied out of the job's tmpfs: the evaluator's own file, never the container user's
    info = (job_dirs[1] / "predictions.npy").stat()
    assert (info.st_uid, info.st_mode & 0o777) == (os.getuid(), 0o644)
    assert "wrote predictions (4, 3)" in outcome.log_tail
    assert outcome.image_id is not None and outcome.image_id.startswith("sha256:")
    assert outcome.output_bytes > predictions.nbytes
    assert 0 < outcome.durations.run_s < outcome.durations.total_s
    outcome.raise_for_status()


def test_settings_seen_by_engine_and_sleeper_killed_at_timeout(test_images, job_dirs):
    limits = RunLimits(timeout_s=4, mem_limit_gb=0.25, cpus=0.5, pids_limit=48, tmp_size_mb=12,
                       output_max_mb=8, log_max_kb=16)
    seen: dict[str, Any] = {}

    def inspect(container_id: str) -> None:
        seen["id"] = container_id
        seen["inspect"] = docker_inspect(container_id)
        volume = next(m["Name"] for m in seen["inspect"]["Mounts"]
                      if m["Destination"] == "/output")
        done = subprocess.run(["docker", "volume", "inspect", volume], capture_output=True,
                              text=True, check=True)
        seen["volume"] = json.loads(done.stdout)[0]

    outcome = run(test_images["sleeper"], job_dirs, limits, on_started=inspect)

    assert outcome.status == "timed_out", outcome
    assert outcome.exit_code == 137
    assert 4 <= outcome.durations.run_s < 15
    assert "going to sleep" in outcome.log_tail
    assert "within 4 s" in outcome.message
    assert not container_exists(seen["id"])

    info = seen["inspect"]
    host = info["HostConfig"]
    assert info["State"]["Running"] is True
    assert info["Config"]["User"] == "10001:10001"
    assert info["Image"] == outcome.image_id
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert not host.get("CapAdd")
    assert host["Privileged"] is False
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["NetworkMode"] == "none"
    assert host["PidsLimit"] == 48
    assert host["Memory"] == 2**28
    assert host["MemorySwap"] == 2**28
    assert host["NanoCpus"] == 500_000_000
    assert host["Tmpfs"] == {"/tmp": "rw,nosuid,nodev,exec,size=12m,mode=1777"}
    assert not host.get("DeviceRequests")
    assert not host.get("Binds")
    assert info["Config"]["Healthcheck"] == {"Test": ["NONE"]}
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert set(mounts) == {"/input", "/output"}
    assert mounts["/input"]["RW"] is False
    assert mounts["/input"]["Source"] == str(job_dirs[0].resolve())
    assert mounts["/output"]["RW"] is True
    assert mounts["/output"]["Type"] == "volume"
    # /output is a tmpfs the kernel holds to output_max_mb (8 MB), not a host folder
    assert seen["volume"]["Options"]["type"] == "tmpfs"
    assert "size=8388608," in seen["volume"]["Options"]["o"]
    assert list(info["NetworkSettings"]["Networks"]) == ["none"]


def test_network_is_unreachable(test_images, job_dirs, small_limits):
    outcome = run(test_images["network"], job_dirs, small_limits)

    assert outcome.status == "succeeded", outcome.log_tail
    assert "CONNECTED" not in outcome.log_tail
    assert "connect 1.1.1.1:53: failed" in outcome.log_tail
    assert "dns pypi.org: failed" in outcome.log_tail
    assert "interfaces: ['lo']" in outcome.log_tail


def test_hidden_truth_outside_input_is_invisible(test_images, tmp_path, job_dirs, small_limits):
    token = uuid.uuid4().hex
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / f"truth-{token}.h5ad").write_bytes(b"secret")
    (tmp_path / f"truth-{token}.npy").write_bytes(b"secret")

    outcome = run(test_images["truth_search"], job_dirs, small_limits)

    assert outcome.status == "succeeded", outcome.log_tail
    assert "suspects found: 0" in outcome.log_tail
    assert token not in outcome.log_tail
    assert str(hidden) not in outcome.log_tail
    assert "docker.sock" not in outcome.log_tail


def test_input_and_root_are_read_only(test_images, job_dirs, small_limits):
    input_dir, output_dir = job_dirs
    # wide open on the host: only the read-only mount can stop the writes
    input_dir.chmod(0o777)
    (input_dir / "task.json").chmod(0o666)
    before = {p.name: p.read_bytes() for p in input_dir.iterdir()}

    outcome = run(test_images["write_input"], job_dirs, small_limits)

    assert outcome.status == "succeeded", outcome.log_tail
    assert "WRITTEN" not in outcome.log_tail
    assert "write /input/new-file: failed (Read-only file system)" in outcome.log_tail
    assert "write /input/task.json: failed (Read-only file system)" in outcome.log_tail
    assert "write /evil: failed (Read-only file system)" in outcome.log_tail
    assert "write /tmp/ok: ok" in outcome.log_tail
    assert {p.name: p.read_bytes() for p in input_dir.iterdir()} == before
    assert (output_dir / "ok").read_text() == "fine"


def test_fork_bomb_is_held_by_pids_limit(test_images, job_dirs, small_limits, engine):
    limits = small_limits.model_copy(update={"pids_limit": 40, "timeout_s": 40})
    observed: dict[str, Any] = {}

    def watch(container_id: str) -> None:
        time.sleep(2)
        stats = engine.api.stats(container_id, stream=False)
        observed["pids"] = stats.get("pids_stats", {}).get("current")
        # the evaluator's own machine can still start processes while the bomb runs
        observed["host_fork"] = subprocess.run(["true"], check=False).returncode

    outcome = run(test_images["fork_bomb"], job_dirs, limits, on_started=watch)

    assert outcome.status == "exit_nonzero", outcome
    assert outcome.exit_code == 7
    assert "fork bomb parent still alive" in outcome.log_tail
    assert observed["host_fork"] == 0
    assert observed["pids"] is not None and 1 <= observed["pids"] <= 40
    assert outcome.durations.run_s < 30


def test_memory_hog_is_out_of_memory(test_images, job_dirs, small_limits):
    limits = small_limits.model_copy(update={"mem_limit_gb": 0.25})

    outcome = run(test_images["memory_hog"], job_dirs, limits)

    assert outcome.status == "out_of_memory", outcome
    assert outcome.exit_code == 137
    assert "holding 128 MB" in outcome.log_tail
    assert "holding 512 MB" not in outcome.log_tail
    assert "0.25 GB" in outcome.message


def test_tmp_is_size_limited(test_images, job_dirs, small_limits):
    outcome = run(test_images["fill_tmp"], job_dirs, small_limits)

    assert outcome.status == "succeeded", outcome.log_tail
    line = next(x for x in outcome.log_tail.splitlines() if x.startswith("tmp "))
    assert line.endswith("ENOSPC"), line
    written_mb = int(line.split()[3])
    assert 8 <= written_mb <= small_limits.tmp_size_mb


@pytest.mark.parametrize("mode", ["burst", "stream"])
def test_huge_output_is_invalid(test_images, job_dirs, small_limits, mode):
    limits = small_limits.model_copy(update={"output_max_mb": 4, "timeout_s": 60})

    outcome = run(test_images["huge_output"], job_dirs, limits, environment={"MODE": mode})

    # the kernel refused every write past 4 MB (ENOSPC): the job failed at the limit, long
    # before it wrote its 48 MB or 4 GB, and never reached the stream mode's sleep
    assert outcome.status == "output_invalid", outcome
    assert "expected at most 4 MB under /output, found /output full" in outcome.message
    assert "No space left on device" in outcome.log_tail
    assert 3 * 2**20 < outcome.output_bytes <= 4 * 2**20
    assert outcome.durations.run_s < 20


def test_exit_code_and_message_reach_the_author(test_images, job_dirs, small_limits):
    outcome = run(test_images["exit_three"], job_dirs, small_limits)

    assert outcome.status == "exit_nonzero"
    assert outcome.exit_code == 3
    assert "model exploded: expected 128 genes, found 32" in outcome.log_tail
    assert outcome.message == "expected exit code 0, found 3"
    with pytest.raises(ContainerFailed, match="model exploded") as raised:
        outcome.raise_for_status()
    assert raised.value.exit_code == 3


def test_user_root_image_still_runs_unprivileged(test_images, job_dirs, small_limits):
    outcome = run(test_images["run_as_root"], job_dirs, small_limits)

    assert outcome.status == "succeeded", outcome.log_tail
    assert "uid=10001 euid=10001 gid=10001" in outcome.log_tail
    assert "CapEff: 0000000000000000" in outcome.log_tail
    assert "CapBnd: 0000000000000000" in outcome.log_tail
    assert "NoNewPrivs: 1" in outcome.log_tail
    assert "setuid(0): PermissionError" in outcome.log_tail
    assert "read /etc/shadow: PermissionError" in outcome.log_tail
    assert "SUCCEEDED" not in outcome.log_tail


def test_log_is_capped_and_keeps_the_tail(test_images, job_dirs, small_limits):
    limits = small_limits.model_copy(update={"log_max_kb": 4})

    outcome = run(test_images["chatty"], job_dirs, limits)

    assert outcome.status == "succeeded"
    assert outcome.log_truncated is True
    assert len(outcome.log_tail.encode()) <= 4 * 1024
    assert outcome.log_tail.rstrip().endswith("LAST LINE: done")
    assert "progress line 049999" in outcome.log_tail


def test_symlinked_output_is_invalid(test_images, job_dirs, small_limits):
    outcome = run(test_images["symlink_output"], job_dirs, small_limits)

    assert outcome.status == "output_invalid", outcome
    assert "is a symlink" in outcome.message


def test_missing_predictions_is_output_missing(engine, job_dirs, small_limits):
    # the base image's default command only prints a hint and exits 0
    outcome = run(BASE_IMAGE, job_dirs, small_limits)

    assert outcome.status == "output_missing", outcome
    assert outcome.exit_code == 0
    assert outcome.message.startswith("expected /output/predictions.npy, found no such file")


def test_output_validator_hook_marks_output_invalid(test_images, job_dirs, small_limits):
    class TooFewGenes(BenchError):
        pass

    def validate(output_dir: Path) -> None:
        shape = np.load(output_dir / "predictions.npy").shape
        raise TooFewGenes(f"predictions.npy: expected shape (4, 128), found {shape}")

    outcome = run(test_images["well_behaved"], job_dirs, small_limits, validate_output=validate)

    assert outcome.status == "output_invalid"
    assert outcome.message == "predictions.npy: expected shape (4, 128), found (4, 3)"


def test_image_missing(engine, job_dirs, small_limits):
    outcome = run(f"spared-bench-test/absent-{uuid.uuid4().hex[:8]}:1", job_dirs, small_limits)

    assert outcome.status == "image_missing"
    assert outcome.image_id is None
    with pytest.raises(ImageMissing):
        outcome.raise_for_status()


def test_engine_unavailable(job_dirs, small_limits, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")

    outcome = run(BASE_IMAGE, job_dirs, small_limits)

    assert outcome.status == "engine_unavailable"
    assert "no-engine.sock" in outcome.message
    with pytest.raises(EngineUnavailable, match="expected a Docker engine answering"):
        outcome.raise_for_status()


def test_containers_removed_after_every_outcome(test_images, tmp_path, small_limits, engine):
    limits = small_limits.model_copy(update={"timeout_s": 3, "output_max_mb": 4})
    created: list[str] = []
    cases = [("well_behaved", "succeeded"), ("exit_three", "exit_nonzero"),
             ("sleeper", "timed_out"), ("symlink_output", "output_invalid")]
    for i, (name, expected) in enumerate(cases):
        input_dir = tmp_path / f"in-{i}"
        input_dir.mkdir(mode=0o755)
        (input_dir / "task.json").write_text('{"n_test_spots": 1, "genes": ["A"]}')
        (input_dir / "task.json").chmod(0o644)
        outcome = run_container(test_images[name], input_dir, tmp_path / f"out-{i}", limits,
                                labels=SESSION_LABELS, on_started=created.append)
        assert outcome.status == expected
        assert job_containers(engine) == []
    assert len(created) == len(cases)
    assert not any(container_exists(c) for c in created)


def test_assigned_gpus_fail_loudly_without_a_gpu_runtime(test_images, job_dirs, small_limits,
                                                         engine):
    if "nvidia" in engine.info().get("Runtimes", {}):
        outcome = run(test_images["well_behaved"], job_dirs, small_limits, gpus=[0])
        assert outcome.status == "succeeded", outcome
    else:
        # never silently run on the CPU a job that was given a GPU
        with pytest.raises(RunnerConfigError, match="expected the engine to accept"):
            run(test_images["well_behaved"], job_dirs, small_limits, gpus=[0])
    assert job_containers(engine) == []


def test_client_is_reused_across_jobs(test_images, tmp_path, small_limits, engine):
    outcomes = []
    for i in range(2):
        input_dir = tmp_path / f"in-{i}"
        input_dir.mkdir(mode=0o755)
        (input_dir / "task.json").write_text('{"n_test_spots": 2, "genes": ["A", "B"]}')
        (input_dir / "task.json").chmod(0o644)
        outcomes.append(run_container(test_images["well_behaved"], input_dir,
                                      tmp_path / f"out-{i}", small_limits, client=engine,
                                      labels=SESSION_LABELS))
    assert [o.status for o in outcomes] == ["succeeded", "succeeded"]
    assert os.path.exists(tmp_path / "out-1" / "predictions.npy")
