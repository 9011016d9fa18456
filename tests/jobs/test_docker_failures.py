"""A misbehaving image, run by `check` in a container: each failure gets its own message."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from evaluator.cli import main

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
