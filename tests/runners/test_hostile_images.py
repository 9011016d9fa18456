"""Issue 17 against the docker runner: host disk held by a job, images that cannot start,
health checks, hostile /output trees and predictions files the evaluator cannot open.

Each class has its own image under tests/runners/images/; every test checks the status after
one run, and (the autouse fixture) that no container or volume is left behind.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from evaluator.runners import RunLimits, RunOutcome, run_container
from evaluator.runners.output_volume import MAX_OUTPUT_DEPTH
from tests.runners.conftest import (
    SESSION_LABELS,
    job_containers,
    job_volumes,
    leftover_volumes,
)

pytestmark = pytest.mark.docker


def run(tag: str, job_dirs: tuple[Path, Path], limits: RunLimits, **kwargs: Any) -> RunOutcome:
    input_dir, output_dir = job_dirs
    return run_container(tag, input_dir, output_dir, limits, labels=SESSION_LABELS, **kwargs)


def free_bytes(path: str) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def test_host_disk_stays_within_the_limits_while_a_job_hogs_it(test_images, job_dirs,
                                                               small_limits, engine):
    docker_root = engine.info()["DockerRootDir"]
    places = sorted({docker_root, str(job_dirs[1].parent), "/tmp"})
    before = {p: free_bytes(p) for p in places}
    lowest = dict(before)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            for p in places:
                lowest[p] = min(lowest[p], free_bytes(p))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        outcome = run(test_images["disk_hog"], job_dirs, small_limits,
                      environment={"HOLD_S": "3"})
    finally:
        stop.set()
        sampler.join()

    # bounded by the kernel, it still succeeds: nothing it did cost the host's disk
    assert outcome.status == "succeeded", outcome
    assert "fallocate 6 GiB: failed (No space left on device)" in outcome.log_tail
    assert "deleted-open file: stopped at" in outcome.log_tail
    stopped_mb = int(outcome.log_tail.split("deleted-open file: stopped at ")[1].split()[0])
    assert stopped_mb <= small_limits.output_max_mb
    assert "root filesystem: failed (Read-only file system)" in outcome.log_tail
    assert "holding" in outcome.log_tail
    # other processes share this disk: allow them 256 MB of noise, far below the 6 GiB tried
    for place in places:
        drop = before[place] - lowest[place]
        assert drop < 256 * 2**20, f"{place}: free disk fell by {drop / 2**20:.0f} MB"
    assert sorted(p.name for p in job_dirs[1].iterdir()) == ["predictions.npy"]


@pytest.mark.parametrize(("name", "expected"), [
    ("no_command", "expected the image to name the program to run (ENTRYPOINT or CMD)"),
    ("missing_entrypoint", "/opt/model/run-predict"),
    ("image_volume", "found VOLUME /data"),
    ("volume_under_input", "found VOLUME /input/cache"),
    ("output_is_file", "/output, flags: 0x5000: not a directory"),
])
def test_image_that_cannot_start_is_image_invalid(test_images, job_dirs, small_limits, engine,
                                                  name, expected):
    volumes_before = {v.name for v in engine.volumes.list()}

    outcome = run(test_images[name], job_dirs, small_limits)

    assert outcome.status == "image_invalid", outcome
    assert expected in outcome.message
    assert str(job_dirs[0]) not in outcome.message
    assert "/var/lib/docker" not in outcome.message
    assert leftover_volumes(engine, volumes_before) == []  # no anonymous volume
    assert job_containers(engine) == [] and job_volumes(engine) == []


def test_image_healthcheck_never_runs(test_images, job_dirs, small_limits, engine):
    seen: dict[str, Any] = {}

    def inspect(container_id: str) -> None:
        seen["state"] = engine.api.inspect_container(container_id)["State"]

    outcome = run(test_images["healthcheck"], job_dirs, small_limits, on_started=inspect)

    assert outcome.status == "succeeded", outcome
    assert "never probed" in outcome.log_tail
    assert "Health" not in seen["state"]


def test_deep_output_tree_is_invalid_and_leaves_nothing(test_images, job_dirs, small_limits):
    outcome = run(test_images["deep_output"], job_dirs, small_limits,
                  environment={"DEPTH": "3000"})

    assert outcome.status == "output_invalid", outcome
    assert f"folders nested more than {MAX_OUTPUT_DEPTH} deep" in outcome.message
    depth = max(len(Path(p).relative_to(job_dirs[1]).parts) for p, _, _ in os.walk(job_dirs[1]))
    assert depth <= MAX_OUTPUT_DEPTH + 1
    assert str(job_dirs[1]) not in outcome.message


@pytest.mark.parametrize(("mode", "status", "expected"), [
    ("fifo", "output_invalid", "found /output/predictions.npy is a fifo"),
    ("symlink", "output_invalid", "found /output/predictions.npy is a symlink"),
    ("directory", "output_invalid", "to be a file, found a folder"),
    # copied out by the engine, the file is the evaluator's own: mode 000 cannot stop it
    ("noperm", "succeeded", "wrote /output/predictions.npy"),
])
def test_predictions_the_evaluator_cannot_open(test_images, job_dirs, small_limits, mode,
                                               status, expected):
    outcome = run(test_images["odd_predictions"], job_dirs, small_limits,
                  environment={"MODE": mode})

    assert outcome.status == status, outcome
    assert expected in outcome.message
    assert str(job_dirs[1]) not in outcome.message


NON_ROOT_JOB = """
import json, os, sys, tempfile
from pathlib import Path
from evaluator.runners import RunLimits, run_container
from evaluator.runners.jobfs import remove_tree
scratch = Path(tempfile.mkdtemp(dir=sys.argv[2]))
(scratch / "in").mkdir(mode=0o755)
(scratch / "in" / "task.json").write_text("{}")
limits = RunLimits(timeout_s=60, mem_limit_gb=0.5, cpus=0.5, pids_limit=64, tmp_size_mb=16,
                   output_max_mb=8, log_max_kb=16)
outcome = run_container(sys.argv[1], scratch / "in", scratch / "out", limits,
                        environment={"DEPTH": "20"}, labels=json.loads(sys.argv[3]))
folders = sum(1 for _ in os.walk(scratch / "out"))
remove_tree(scratch)
print(json.dumps({"status": outcome.status, "uid": os.getuid(), "folders": folders,
                  "left": scratch.exists()}))
"""


def test_an_evaluator_not_running_as_root_removes_every_job_folder(test_images):
    """The job's folders are the evaluator's own (copied out), so a plain user removes them."""
    import grp
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    # pytest's own folders are root's (0700): the plain user works in one of its own
    work = Path(tempfile.mkdtemp(prefix="spared-nonroot-"))
    work.chmod(0o777)
    docker_gid = grp.getgrnam("docker").gr_gid
    try:
        done = subprocess.run(
            ["setpriv", "--reuid", "12345", "--regid", "12345", f"--groups={docker_gid}",
             sys.executable, "-c", NON_ROOT_JOB, test_images["deep_output"], str(work),
             json.dumps(SESSION_LABELS)],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                 "HOME": str(work)})
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout.strip().splitlines()[-1])
        # 20 nested folders written by uid 10001 in the container, removed by uid 12345
        assert report == {"status": "succeeded", "uid": 12345, "folders": 21, "left": False}
        assert list(work.iterdir()) == []
    finally:
        shutil.rmtree(work, ignore_errors=True)
