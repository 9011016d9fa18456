"""`check` as an author expects it: baselines beside one's numbers, kept logs, track warnings."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from evaluator.cli import main
from evaluator.jobs.baselines import CACHE_FILE

REPO = Path(__file__).resolve().parents[2]
MEAN = "python submissions/baselines/mean/predict.py"
SAME_ON_BOTH_TRACKS = """
import sys
sys.path.insert(0, {sdk!r})
import numpy as np
import spared_sdk as sdk
task = sdk.read_task()
print("fitting nothing on", task.dataset, task.track)
sdk.write_predictions(np.ones((task.n_test_spots, len(task.genes)), np.float32), task)
"""


@pytest.fixture
def home(tiny_release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home (its own staging and baseline cache) over the tiny release."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "releases").symlink_to(tiny_release.root.parent, target_is_directory=True)
    monkeypatch.setenv("SPARED_BENCH_HOME", str(home))
    monkeypatch.chdir(REPO)
    return home


def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d{4}", line)]


def test_check_prints_the_baselines_of_the_same_validation_data(
        home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--runner", "local", "--datasets", "MHPC", "--time-limit-s", "120"]
    assert main(["check", MEAN, *args]) == 0
    out, err = capsys.readouterr()
    assert "baselines: read from the cache under the staging folder" in err
    passes = [line for line in out.splitlines() if line.startswith("PASS")]
    lines = [line for line in out.splitlines() if "baselines (MSE / PCC-Gene):" in line]
    assert len(passes) == len(lines) == 2, out
    for own, baseline in zip(passes, lines, strict=True):
        # The author's job here IS the mean baseline: the same numbers, so the same spots.
        mse, pcc = _numbers(own)[:2]
        assert f"mean {mse:.4f} / {pcc:.4f}" in baseline, (own, baseline)
        assert re.search(r"ridge \d+\.\d{4} / -?\d+\.\d{4}", baseline), baseline
    caches = sorted(home.glob(f"staging/*/validation-v*/*/*/{CACHE_FILE}"))
    assert [c.parent.name for c in caches] == ["raw", "spackle"]
    cached = json.loads(caches[0].read_text())
    assert sorted(cached["scores"]) == ["mean", "ridge"]
    assert all(s["status"] == "succeeded" for s in cached["scores"].values())

    # Cached: a second check reads the numbers (the cache is not rewritten) and is fast.
    stamps = [c.stat().st_mtime_ns for c in caches]
    t0 = time.perf_counter()
    assert main(["check", MEAN, *args, "--tracks", "raw"]) == 0
    again, _ = capsys.readouterr()
    assert [c.stat().st_mtime_ns for c in caches] == stamps
    assert lines[0] in again
    assert time.perf_counter() - t0 < 30

    assert main(["check", MEAN, *args, "--no-baselines"]) == 0
    assert "baselines (MSE" not in capsys.readouterr()[0]


def test_identical_tracks_warn_and_logs_of_passing_jobs_are_kept(
        home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "same.py"
    script.write_text(SAME_ON_BOTH_TRACKS.format(sdk=str(REPO / "submissions" / "sdk")))
    kept = tmp_path / "kept"
    code = main(["check", f"{sys.executable} {script}", "--runner", "local", "--datasets",
                 "MHPC", "--no-baselines", "--keep-outputs", str(kept)])
    out, _ = capsys.readouterr()
    assert code == 0, out  # a warning, not a failure
    assert ("WARNING  mirzazadeh_human_prostate_cancer: the raw and spackle tracks got "
            "identical predictions") in out
    assert "check passed: 2/2 job(s)" in out and "1 warning(s)" in out
    for track in ("raw", "spackle"):
        folder = kept / "mirzazadeh_human_prostate_cancer" / track
        assert sorted(p.name for p in folder.iterdir()) == ["log.txt", "predictions.npy"]
        assert (folder / "log.txt").read_text() == (
            f"fitting nothing on mirzazadeh_human_prostate_cancer {track}\n")
    assert f"log.txt (stdout + stderr) in {kept}/<dataset>/<track>/" in out

    # The mean baseline differs between the tracks: no warning.
    assert main(["check", MEAN, "--runner", "local", "--datasets", "MHPC",
                 "--no-baselines"]) == 0
    assert "WARNING" not in capsys.readouterr()[0]
