"""SpaRED's real patch size end to end, every evaluator process under a kernel memory cap.

A 224 x 224 px dataset of 3,000 spots (430 MiB of pixels, more than the cap leaves once the
libraries are loaded) goes through synth -> release -> staging -> check of every baseline and
an evaluation, each evaluator process in a memory-capped cgroup and each submission in a
1 GiB container: a stage that held every patch at once would be killed. Pixel bytes are
shared, not copied, between the tracks and between two releases, as the files themselves show.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.jobs.conftest import BASELINES
from tests.memcap import disk_bytes, run_capped

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SIDE = 224
SPOTS = 3000
DATASET = "mirzazadeh_human_prostate_cancer"
CHANGED = "villacampa_lung_organoid"
CAP_BYTES = int(1.25 * 2**30)
PATCH_BYTES = SIDE * SIDE * 3
CLI = [str(Path(sys.executable).parent / "spared-bench")]


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory):
    """Run a ``spared-bench`` command line under the cap; return the run, checked."""
    home = tmp_path_factory.mktemp("real_size_home")
    env = {**os.environ, "SPARED_BENCH_HOME": str(home), "SPARED_BENCH_PROGRESS": "0"}
    peaks: dict[str, int] = {}

    def run(name: str, *args: str, timeout_s: float = 900):
        result = run_capped([*CLI, *args], CAP_BYTES, env=env, timeout_s=timeout_s)
        assert not result.oom_killed, f"{name}: killed by the {CAP_BYTES} byte memory cap"
        assert result.returncode == 0, f"{name}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
        peaks[name] = result.peak_rss_bytes
        return result

    run.home = home  # type: ignore[attr-defined]
    run.peaks = peaks  # type: ignore[attr-defined]
    return run


@pytest.fixture(scope="module")
def real_release(capped) -> dict:
    """Synthesize the 224 px dataset and build a release of it, both under the cap."""
    processed = capped.home / "src"
    capped("synth", "data", "synth", "--size", "full", "--datasets", DATASET,
           "--patch-size", str(SIDE), "--max-spots", str(SPOTS), "--out", str(processed))
    capped("release", "data", "release", str(processed / f"{DATASET}.h5ad"), "--label", "r1")
    releases = capped.home / "releases"
    (first,) = [p for p in releases.iterdir() if not p.name.startswith(".")]
    return {"source": processed / f"{DATASET}.h5ad", "root": first}


def test_the_cap_kills_a_process_that_holds_the_pixels(tmp_path: Path) -> None:
    """The cap bites: the same cap kills a process that holds 1.5 GiB at once."""
    result = run_capped([sys.executable, "-c", "import numpy as np; a = np.ones(3 * 2**27)"
                         "; print(a.sum())"], CAP_BYTES)
    assert result.returncode != 0 and result.oom_killed


def test_release_keeps_one_copy_of_the_pixels(real_release: dict) -> None:
    root, source = real_release["root"], real_release["source"]
    public = root / "public" / DATASET
    train = np.load(public / "train_patches.npy", mmap_mode="r")
    test = np.load(public / "test_patches.npy", mmap_mode="r")
    assert train.shape[1:] == test.shape[1:] == (SIDE, SIDE, 3)
    assert len(train) + len(test) == SPOTS
    pixels = SPOTS * PATCH_BYTES
    # Both tracks' train.h5ad hold expression only: the pixels are in the one .npy.
    for track in ("raw", "spackle"):
        assert (public / track / "train.h5ad").stat().st_size < 0.02 * pixels
    release_bytes = disk_bytes(root)
    assert pixels <= release_bytes <= 1.1 * source.stat().st_size
    # Every file of the release is a hard link of its content-addressed blob.
    for path in (p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json"):
        assert path.stat().st_nlink >= 2, path


def test_a_second_release_adds_only_the_changed_dataset(capped, real_release: dict) -> None:
    releases = capped.home / "releases"
    before = disk_bytes(releases)
    changed = capped.home / "src2"
    capped("synth-changed", "data", "synth", "--size", "tiny", "--datasets", CHANGED,
           "--patch-size", str(SIDE), "--out", str(changed))
    capped("release-2", "data", "release", str(real_release["source"]),
           str(changed / f"{CHANGED}.h5ad"), "--label", "r2")
    added = disk_bytes(releases) - before
    (second,) = [p for p in releases.iterdir()
                 if not p.name.startswith(".") and p != real_release["root"]]
    new_dataset = (disk_bytes(second / "public" / CHANGED)
                   + disk_bytes(second / "hidden" / CHANGED))
    assert added <= 1.1 * new_dataset + 64 * 1024, (added, new_dataset)
    for name in ("train_patches.npy", "test_patches.npy"):
        old = real_release["root"] / "public" / DATASET / name
        assert (second / "public" / DATASET / name).stat().st_ino == old.stat().st_ino


def test_every_baseline_checks_and_evaluates_at_real_size(capped, real_release: dict,
                                                          baseline_images: dict[str, str],
                                                          tmp_path: Path) -> None:
    limits = ["--time-limit-s", "120", "--mem-limit-gb", "1", "--cpus", "2"]
    for name in BASELINES:
        result = capped(f"check-{name}", "check", baseline_images[name], "--release", "r1",
                        "--tracks", "raw", *limits)
        assert "check passed: 1/1 job(s)" in result.stdout, result.stdout
    for name in ("mean", "ridge"):
        report = tmp_path / f"{name}.json"
        capped(f"evaluate-{name}", "evaluate", baseline_images[name], "--release", "r1",
               "--tracks", "raw,spackle", "--report", str(report), *limits)
        results = json.loads(report.read_text())["results"]
        assert [r["status"] for r in results] == ["succeeded", "succeeded"]
    # Staging linked the release's pixels into the job folders: no copy per job.
    staged = [p for p in (capped.home / "staging").rglob("train_patches.npy")
              if "evaluation" in p.parts]
    release_patches = real_release["root"] / "public" / DATASET / "train_patches.npy"
    assert staged and {p.stat().st_ino for p in staged} == {release_patches.stat().st_ino}
    assert max(capped.peaks.values()) < CAP_BYTES
