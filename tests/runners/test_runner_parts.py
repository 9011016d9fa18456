"""Engine-free parts of the runners: limits, container settings, output checks, outcomes."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from evaluator.contract import image_problem
from evaluator.runners import (
    ContainerFailed,
    EngineUnavailable,
    ImageMissing,
    JobFolderError,
    RunLimits,
    RunOutcome,
    container_settings,
)
from evaluator.runners.docker_runner import _image_caused
from evaluator.runners.jobfs import (
    MAX_OUTPUT_ENTRIES,
    cap_log,
    check_output,
    measure_output,
    prepare_output_dir,
    remove_tree,
)
from evaluator.runners.output_volume import (
    HOLDER_PROGRAM,
    collect_output,
    output_volume_options,
)


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
    plain = container_settings("sha256:abc", tmp_path / "in", "spared-out-1", limits, None)
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
    assert (mounts["/output"]["Type"], mounts["/output"]["Source"]) == ("volume", "spared-out-1")
    assert mounts["/output"]["VolumeOptions"]["NoCopy"] is True
    assert plain["healthcheck"] == {"test": ["NONE"]}

    with_gpus = container_settings("sha256:abc", tmp_path / "in", "spared-out-1", limits,
                                   [0, 2])
    (request,) = with_gpus["device_requests"]
    assert request["DeviceIDs"] == ["0", "2"]
    assert request["Capabilities"] == [["gpu"]]
    assert not request.get("Count")
    assert "device_requests" not in container_settings("x", tmp_path, "v", limits, [])


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


def test_output_volume_is_a_bounded_tmpfs():
    options = output_volume_options(RunLimits(output_max_mb=3))
    assert options["type"] == "tmpfs"
    assert f"size={3 * 2**20}," in options["o"]
    assert f"nr_inodes={MAX_OUTPUT_ENTRIES + 1}," in options["o"]
    assert "uid=10001,gid=10001" in options["o"]


def test_holder_program_is_a_static_elf_that_waits(tmp_path):
    program = tmp_path / "hold"
    program.write_bytes(HOLDER_PROGRAM)
    program.chmod(0o755)
    process = subprocess.Popen([str(program)])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -9


@pytest.mark.parametrize(("config", "expected"), [
    ({"Cmd": ["python3"]}, None),
    ({"Entrypoint": ["/run"], "Volumes": {"/output": {}, "/tmp/": {}}}, None),
    ({"Entrypoint": None, "Cmd": None}, "(ENTRYPOINT or CMD), found neither"),
    ({"Entrypoint": [], "Cmd": []}, "(ENTRYPOINT or CMD), found neither"),
    ({"Cmd": ["x"], "Volumes": {"/data": {}}}, "found VOLUME /data"),
    ({"Cmd": ["x"], "Volumes": {"/input/../input/c": {}}}, "found VOLUME /input/c"),
])
def test_image_problem_refuses_no_command_and_volumes(config, expected):
    problem = image_problem(config)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and expected in problem


def test_remove_tree_takes_any_depth_and_read_only_folders(tmp_path):
    top = tmp_path / "job"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(3000):  # far past PATH_MAX and the recursion limit
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
    finally:
        os.close(fd)
    locked = top / "locked"
    locked.mkdir()
    (locked / "f").write_text("x")
    locked.chmod(0o500)
    (top / "link").symlink_to("/etc")

    remove_tree(top)

    assert not top.exists()
    assert Path("/etc").is_dir()
    remove_tree(top)  # absent: nothing to do


def _output_tar(members: list[tuple[str, bytes, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(_info("output", tarfile.DIRTYPE, 0))
        for name, kind, data in members:
            info = _info(name, kind, len(data))
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


def _info(name: str, kind: bytes, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size if kind == tarfile.REGTYPE else 0
    info.mode = 0o000
    return info


def test_collect_output_writes_plain_files_and_stops_at_anything_else(tmp_path):
    limits = RunLimits(output_max_mb=1)
    good = _output_tar([("output/predictions.npy", tarfile.REGTYPE, b"abc"),
                        ("output/sub", tarfile.DIRTYPE, b""),
                        ("output/sub/x", tarfile.REGTYPE, b"y" * 5000)])
    collected = collect_output([good[:700], good[700:]], tmp_path / "a", limits)
    assert collected.unsafe is None and not collected.too_big
    assert (collected.total_bytes, collected.entries) == (5003, 3)
    assert (tmp_path / "a" / "predictions.npy").read_bytes() == b"abc"
    assert (tmp_path / "a" / "predictions.npy").stat().st_mode & 0o777 == 0o644

    linked = _output_tar([("output/predictions.npy", tarfile.SYMTYPE, b"")])
    collected = collect_output([linked], tmp_path / "b", limits)
    assert collected.unsafe == "/output/predictions.npy is a symlink"
    assert not (tmp_path / "b" / "predictions.npy").exists()

    big = _output_tar([("output/a", tarfile.REGTYPE, bytes(2**20)),
                       ("output/b", tarfile.REGTYPE, b"1")])
    assert collect_output([big], tmp_path / "c", limits).too_big

    deep = _output_tar([("output/" + "d/" * 40 + "leaf", tarfile.REGTYPE, b"1")])
    collected = collect_output([deep], tmp_path / "d", limits)
    assert collected.unsafe is not None and "nested more than" in collected.unsafe

    escape = _output_tar([("output/../../etc/evil", tarfile.REGTYPE, b"1")])
    assert "out of /output" in (collect_output([escape], tmp_path / "e", limits).unsafe or "")
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize(("detail", "gpus", "image_caused"), [
    ('OCI runtime create failed: runc create failed: unable to start container process: exec: '
     '"/opt/run": stat /opt/run: no such file or directory: unknown', None, True),
    ('OCI runtime create failed: exec: "/app/x": permission denied: unknown', None, True),
    ('exec: "python9": executable file not found in $PATH: unknown', None, True),
    ("exec format error", None, True),
    ('error mounting "/srv/v" to rootfs at "/input/cache": mkdir /var/lib/docker/overlay2/m/'
     'input/cache: read-only file system: unknown', None, True),
    ('could not select device driver "" with capabilities: [[gpu]]', [0], False),
    ('invalid mount config for type "bind": bind source path does not exist: /srv/in', None,
     False),
    ("cgroup: permission denied", None, False),
])
def test_start_errors_are_sorted_between_image_and_configuration(detail, gpus, image_caused):
    assert _image_caused(detail, gpus) is image_caused
