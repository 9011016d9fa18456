"""A misbehaving image, run by `check` in a container: each failure gets its own message."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from evaluator.cli import main
from tests.runners.conftest import leftover_volumes

pytestmark = pytest.mark.docker

IMAGE = "spared-bench-test/misbehaving:1"
PREDICT = """
import json, time, numpy as np
task = json.load(open("/input/task.json"))
shape = (task["n_test_spots"], len(task["genes"]))
if task["dataset"] == "villacampa_lung_organoid":
    np.save("/output/predictions.npy", np.zeros(shape))            # float64
elif task["dataset"] == "mirzazadeh_human_prostate_cancer":
    print("trying to change my inputs")
    open("/input/task.json", "w").write("{}")                      # read-only mount
else:
    time.sleep(60)                                                 # past the time limit
"""


@pytest.fixture(scope="module")
def misbehaving_image(baseline_images: dict[str, str], tmp_path_factory) -> str:
    context = tmp_path_factory.mktemp("misbehaving")
    (context / "predict.py").write_text(PREDICT)
    (context / "Dockerfile").write_text(
        "FROM spared-bench/base:1\nCOPY predict.py /app/\nCMD [\"python3\", \"/app/predict.py\"]\n")
    result = subprocess.run(["docker", "build", "--network", "none", "-q", "-t", IMAGE,
                             str(context)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "DOCKER_BUILDKIT": "0"})
    assert result.returncode == 0, result.stderr
    yield IMAGE
    subprocess.run(["docker", "rmi", "-f", IMAGE], capture_output=True, timeout=120)


def test_check_reports_each_failure(misbehaving_image: str, bench_home: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(bench_home))
    code = main(["check", misbehaving_image, "--tracks", "raw", "--time-limit-s", "8",
                 "--mem-limit-gb", "1", "--cpus", "1"])
    out, err = capsys.readouterr()
    assert code == 1
    assert ("FAIL  villacampa_lung_organoid/raw: output_invalid: /output/predictions.npy: dtype: "
            "expected float32, found float64 (save with preds.astype(np.float32))") in out
    assert "FAIL  mirzazadeh_human_prostate_cancer/raw: exit_nonzero: expected exit code 0, " \
           "found 1" in out
    assert "| trying to change my inputs" in out
    assert "Read-only file system" in out
    assert ("FAIL  mirzazadeh_human_colon_p1/raw: timed_out: expected the job to finish within "
            "8 s") in out
    assert "Error: check FAILED: 3 of 3 job(s) failed" in err


def test_missing_image_is_one_clear_error(bench_home: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(bench_home))
    assert main(["check", "spared-bench-test/no-such-image:1"]) == 2
    _, err = capsys.readouterr()
    assert err.strip() == ("error: image 'spared-bench-test/no-such-image:1': expected it present "
                           "on this machine's engine, found no such image")


@pytest.fixture(scope="module")
def unstartable_image(baseline_images: dict[str, str], tmp_path_factory) -> str:
    """An image whose entrypoint does not exist: the engine cannot start it."""
    context = tmp_path_factory.mktemp("unstartable")
    (context / "Dockerfile").write_text(
        "FROM spared-bench/base:1\nENTRYPOINT [\"/opt/model/run-predict\"]\n")
    tag = "spared-bench-test/unstartable:1"
    result = subprocess.run(["docker", "build", "--network", "none", "-q", "-t", tag,
                             str(context)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "DOCKER_BUILDKIT": "0"})
    assert result.returncode == 0, result.stderr
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120)


@pytest.mark.parametrize("command", ["check", "evaluate"])
def test_image_that_cannot_start_is_image_invalid_once(
        unstartable_image: str, bench_home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str) -> None:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(bench_home))
    extra = ["--report", str(tmp_path / "report.json")] if command == "evaluate" else []
    volumes_before = subprocess.run(["docker", "volume", "ls", "-q"], capture_output=True,
                                    text=True, check=True).stdout.split()

    code = main([command, unstartable_image, "--tracks", "raw", "--time-limit-s", "20",
                 "--mem-limit-gb", "1", "--cpus", "1", *extra])

    out, err = capsys.readouterr()
    assert code == 1, err  # a failed job, not a configuration error (2)
    lines = [x for x in out.splitlines() if x.startswith("FAIL")]
    assert len(lines) == 3, out
    assert "image_invalid: expected the image to start as a job" in lines[0]
    assert "/opt/model/run-predict" in lines[0]
    assert all("image_invalid: not run: the image is invalid" in x for x in lines[1:])
    assert not any("/tmp/" in x for x in lines)  # no host path of the staging or job folders
    assert err.count("staging and running") == 1  # one attempt, the rest not run
    if command == "evaluate":
        import json

        report = json.loads((tmp_path / "report.json").read_text())
        assert [r["status"] for r in report["results"]] == ["image_invalid"] * 3
    # other sessions share the engine: only what this image left counts
    leftovers = subprocess.run(["docker", "ps", "-aq", "--filter",
                                f"ancestor={unstartable_image}"], capture_output=True,
                               text=True, check=True).stdout.split()
    assert leftovers == []
    import docker

    with contextlib.closing(docker.from_env()) as client:
        assert leftover_volumes(client, set(volumes_before)) == []
