"""The baselines pass `check` and `evaluate` on the tiny release, in real containers, and image
models beat the training mean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator.cli import main
from tests.jobs.conftest import BASELINES

pytestmark = pytest.mark.docker

LIMITS = ["--time-limit-s", "60", "--mem-limit-gb", "2", "--cpus", "1"]


@pytest.fixture
def home_env(bench_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(bench_home))
    monkeypatch.setenv("SPARED_BENCH_PROGRESS", "0")
    return bench_home


@pytest.fixture(scope="module")
def evaluations(bench_home: Path, baseline_images: dict[str, str],
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Evaluate every baseline on the raw track of the tiny release; name -> JSON report."""
    reports = {}
    out = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARED_BENCH_HOME", str(bench_home))
        for name, tag in baseline_images.items():
            path = out / f"{name}.json"
            code = main(["evaluate", tag, "--release", "tiny", "--tracks", "raw",
                         "--report", str(path), *LIMITS])
            assert code == 0, name
            reports[name] = json.loads(path.read_text())
    return reports


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_passes_check(name: str, baseline_images: dict[str, str], home_env: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", baseline_images[name], "--tracks", "raw", *LIMITS])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert out.count("PASS  ") == 3 and "FAIL" not in out
    assert "check passed: 3/3 job(s)" in out
    assert "held out: the val split (V19D02-088_C1)" in out
    assert "held out: the last training slide (V11A20-405_D1)" in out
    assert "held out: a random 30% of the spots of the only training slide (V11M22-349_B1" in out
    assert "[3/3] villacampa_lung_organoid/raw: ok" in err  # progress per job


def test_every_baseline_is_evaluated_and_scored(evaluations: dict[str, dict],
                                                tiny_release) -> None:
    for name, report in evaluations.items():
        results = report["results"]
        assert [(r["dataset"], r["track"], r["status"]) for r in results] == [
            (d, "raw", "succeeded") for d in tiny_release.datasets], name
        assert report["release_id"] == tiny_release.release_id
        for r in results:
            assert r["score"]["n_spots"] == tiny_release.dataset(r["dataset"]).n_hidden_spots
            assert r["model_card"]["name"] == name
            assert r["image_id"].startswith("sha256:")
            assert r["timings"]["model_s"] > 0


def test_image_models_beat_the_mean(evaluations: dict[str, dict]) -> None:
    mse = {name: {r["dataset"]: r["score"]["metrics"]["mse"] for r in rep["results"]}
           for name, rep in evaluations.items()}
    datasets = list(mse["mean"])
    for dataset in datasets:
        assert mse["ridge"][dataset] < 0.95 * mse["mean"][dataset], (dataset, mse)
        assert mse["knn"][dataset] < mse["mean"][dataset], (dataset, mse)

    def average(name: str) -> float:
        return sum(mse[name].values()) / len(datasets)

    assert average("cnn-delta") < average("mean")
    # the mean predicts a constant per gene: PCC-Gene is 0 by the contract's definition
    for r in evaluations["mean"]["results"]:
        assert r["score"]["metrics"]["pcc_gene"] == 0.0
        assert r["score"]["metrics"]["constant_genes"] == r["score"]["n_genes"]


def test_spackle_track_evaluation_reports_completed_metrics(
        baseline_images: dict[str, str], home_env: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "ridge-spackle.json"
    code = main(["evaluate", baseline_images["ridge"], "--datasets", "VLO", "--tracks",
                 "spackle", "--report", str(report), *LIMITS])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "villacampa_lung_organoid  spackle  ok" in out
    header, row = report.with_suffix(".csv").read_text().splitlines()
    values = dict(zip(header.split(","), row.split(","), strict=False))
    assert values["status"] == "succeeded" and float(values["completed_mse"]) > 0
