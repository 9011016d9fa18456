"""`check` and `evaluate` through the local runner (no engine needed), and their errors."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from evaluator.cli import main

REPO = Path(__file__).resolve().parents[2]
MEAN = "python submissions/baselines/mean/predict.py"


@pytest.fixture
def home_env(bench_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(bench_home))
    monkeypatch.chdir(REPO)
    return bench_home


def test_local_evaluate_prints_a_table_and_writes_reports(home_env: Path, tmp_path: Path,
                                                          tiny_release,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    report = tmp_path / "reports" / "mean.json"
    code = main(["evaluate", MEAN, "--runner", "local", "--datasets", "VLO,MHPC",
                 "--time-limit-s", "60", "--report", str(report)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "NO isolation" in err  # said loudly, once per command
    assert "[1/4] villacampa_lung_organoid/raw: staging and running ..." in err  # given order
    assert "4/4 job(s) succeeded" in out
    for dataset in ("villacampa_lung_organoid", "mirzazadeh_human_prostate_cancer"):
        for track in ("raw", "spackle"):
            assert f"{dataset}".ljust(32) + f"  {track}".ljust(9) + "  ok" in out
    data = json.loads(report.read_text())
    assert data["runner"] == "local" and data["purpose"] == "evaluation"
    assert data["release_id"] == tiny_release.release_id
    rows = list(csv.DictReader(report.with_suffix(".csv").read_text().splitlines()))
    assert [(r["dataset"], r["track"]) for r in rows] == [
        ("villacampa_lung_organoid", "raw"), ("villacampa_lung_organoid", "spackle"),
        ("mirzazadeh_human_prostate_cancer", "raw"),
        ("mirzazadeh_human_prostate_cancer", "spackle")]
    assert all(float(r["mse"]) > 0 and r["status"] == "succeeded" for r in rows)
    assert sorted(p.name for p in report.parent.iterdir()) == ["mean.csv", "mean.json"]


def test_local_check_of_the_template_passes(home_env: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "python submissions/template/predict.py", "--runner", "local",
                 "--tracks", "raw", "--datasets", "MHCP1", "--time-limit-s", "60"])
    out, _ = capsys.readouterr()
    assert code == 0, out
    assert "PASS  mirzazadeh_human_colon_p1/raw: MSE" in out
    assert "check passed: 1/1" in out


def test_failed_jobs_exit_1_with_the_log_tail(home_env: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "broken.py"
    script.write_text("print('step 1 done')\nraise RuntimeError('CUDA out of memory')\n")
    code = main(["evaluate", f"{sys.executable} {script}", "--runner", "local", "--datasets",
                 "VLO", "--tracks", "raw", "--report", str(tmp_path / "r.json")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "FAIL  villacampa_lung_organoid/raw: exit_nonzero: expected exit code 0, found 1" in out
    assert "| step 1 done" in out and "| RuntimeError: CUDA out of memory" in out
    assert "Error: 0/1 job(s) succeeded; report:" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--tracks", "raw,completed"],
     "error: --tracks: expected names among raw, spackle, found ['completed']"),
    (["--datasets", "nosuch"], "error: unknown dataset 'nosuch'"),
    (["--release", "nope"], "error: release 'nope' not found: expected one of"),
    (["--gpus", "first"], "error: --gpus: expected comma-separated device ids like 0,1"),
])
def test_bad_arguments_are_one_line_errors(home_env: Path, args: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", MEAN, "--runner", "local", *args]) == 2
    _, err = capsys.readouterr()
    assert err.strip().splitlines()[-1].startswith(message)


def test_no_release_in_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(tmp_path))
    assert main(["evaluate", MEAN, "--runner", "local"]) == 2
    _, err = capsys.readouterr()
    assert f"error: no release in {tmp_path / 'releases'}: expected at least one" in err
