"""SpaRED's real size: 224 px patches on its largest datasets, stage by stage.

Datasets: vicari_mouse_brain (43,804 spots, 6.6 GB of pixels, SpaRED's largest) and
mirzazadeh_human_prostate_cancer (15,684 spots); ``--quick``: the latter capped at 2,000 spots.
Each stage runs as its own process, timed, with its peak RSS from ``wait4``: synth, release
build, staging (evaluation and validation inputs), and evaluations of the baselines in their
containers (mean and ridge; knn and cnn-delta too on the largest dataset, outside --quick).
The reference is a plain sequential copy of the source file measured in the same run (the
floor of any stage that must read and write those bytes). Then a second release that changes
one small dataset: the bytes it adds, against that dataset's own bytes.

``BENCH_REALSIZE_EVALUATE=0`` measures synth and release builds only (no staging, no
evaluations); ``BENCH_REALSIZE_ONLY=<dataset>[,...]`` keeps those datasets of the plan.
Needs the Docker engine and the baseline images (``scripts/build_baselines.sh``), and about
3x the pixel bytes of free disk under ``$BENCH_REALSIZE_DIR`` (default: a temporary folder).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.harness import BenchRow
from tests.memcap import disk_bytes, run_capped

SIDE = 224
PATCH_BYTES = SIDE * SIDE * 3
LARGEST = "vicari_mouse_brain"
MID = "mirzazadeh_human_prostate_cancer"
CHANGED = "villacampa_lung_organoid"
CLI = [str(Path(sys.executable).parent / "spared-bench")]
COPY_BUFFER = 4 * 1024 * 1024
# cnn-delta trains for half its time limit: a shorter limit keeps the run under an hour on two
# cores; the default (3600 s) would only train longer, memory does not depend on it.
CNN_LIMITS = ["--time-limit-s", "900", "--mem-limit-gb", "4"]


def _copy_floor(source: Path, target: Path) -> float:
    """Seconds of a plain sequential copy of ``source`` (read and write, 4 MiB at a time).

    Measured as a build is: dirty pages flushed first (``os.sync``), and the copy kept (its
    pages must reach the disk, as a release's files must) until the caller has measured the
    stage it is the floor of. Deleted at once, the copy's pages would never be written back,
    and the floor would be the page cache's speed, not the disk's, for files larger than the
    kernel's dirty-page limit (a few GB here).
    """
    os.sync()
    start = time.perf_counter()
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(COPY_BUFFER):
            dst.write(chunk)
    return time.perf_counter() - start


class _Stages:
    """Run CLI stages as measured processes and collect rows."""

    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "SPARED_BENCH_HOME": str(home), "SPARED_BENCH_PROGRESS": "0"}
        self.rows: list[BenchRow] = []

    def run(self, dataset: str, stage: str, argv: list[str], *, python: bool = False,
            home: Path | None = None) -> tuple[float, str]:
        start = time.perf_counter()
        command = [sys.executable, "-c", *argv] if python else [*CLI, *argv]
        env = self.env if home is None else {**self.env, "SPARED_BENCH_HOME": str(home)}
        result = run_capped(command, None, env=env, timeout_s=7200)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{dataset} {stage}: exit {result.returncode}\n"
                               f"{result.stdout[-2000:]}{result.stderr[-3000:]}")
        self.rows.append(BenchRow("realsize", f"{dataset} {stage}", seconds, "s"))
        self.rows.append(BenchRow("realsize", f"{dataset} {stage} peak RSS",
                                  result.peak_rss_bytes / 2**30, "GiB", 2.0, "target",
                                  "process of the stage (evaluations: the evaluator)"))
        return seconds, result.stdout + result.stderr


_STAGE_SCRIPT = """
import sys, time
from pathlib import Path
from evaluator.core.settings import Settings
from evaluator.datasets.release import load_release
from evaluator.jobs.staging import TaskSettings, stage_inputs
settings = Settings.from_env()
release = load_release(sys.argv[1], settings.releases_dir)
for purpose in ("evaluation", "validation"):
    for track in ("raw", "spackle"):
        stage_inputs(purpose, release, sys.argv[2], track, TaskSettings(time_limit_s=3600),
                     settings.home / "staging")
"""


def _one_dataset(stages: _Stages, root: Path, dataset: str, max_spots: int | None,
                 baselines: list[str]) -> Path:
    source_dir = root / "src"
    spots = ["--max-spots", str(max_spots)] if max_spots else []
    stages.run(dataset, "synth", ["data", "synth", "--size", "full", "--datasets", dataset,
                                  "--patch-size", str(SIDE), "--out", str(source_dir), *spots])
    source = source_dir / f"{dataset}.h5ad"
    floor = _copy_floor(source, root / "copy-floor.bin")
    (root / "copy-floor.bin").unlink()
    os.sync()
    size = source.stat().st_size
    stages.rows.append(BenchRow("realsize", f"{dataset} copy floor", size / floor / 1e6, "MB/s",
                                note=f"sequential copy of the {size / 1e9:.2f} GB source"))
    seconds, out = stages.run(dataset, "release build", ["data", "release", str(source),
                                                         "--label", dataset])
    spackle = sum(float(s) for s in re.findall(r"SpaCKLE[^,]*, ([0-9.]+)s\)", out))
    stages.rows.append(BenchRow("realsize", f"{dataset} release build throughput",
                                size / seconds / 1e6, "MB/s", size / floor / 1e6, "copy floor",
                                f"target >= 0.5x; {spackle:.0f} s of it SpaCKLE training"))
    stages.rows.append(BenchRow("realsize", f"{dataset} release build without SpaCKLE",
                                size / max(seconds - spackle, 1e-9) / 1e6, "MB/s",
                                size / floor / 1e6, "copy floor", "reading, splitting, hashing"))
    # The same build again with SpaCKLE's completion cached (a rebuild, a data update, or a
    # source that carries c_t_log1p, as SpaRED's processed files do): everything else is
    # redone, the source read and hashed, the pixels split, hashed and written.
    # In a store of its own that has only SpaCKLE's model cache: nothing else is reused.
    rebuild_home = root / "home-rebuild"
    shutil.copytree(root / "home" / "cache", rebuild_home / "cache")
    floor = min(floor, _copy_floor(source, root / "copy-floor.bin"))  # the better of two
    (root / "copy-floor.bin").unlink()
    os.sync()  # the build starts as the copy did, with no dirty pages
    seconds, out = stages.run(dataset, "release build, SpaCKLE cached",
                              ["data", "release", str(source), "--label", dataset],
                              home=rebuild_home)
    shutil.rmtree(rebuild_home)
    stages.rows.append(BenchRow("realsize", f"{dataset} release build throughput, SpaCKLE cached",
                                size / seconds / 1e6, "MB/s", size / floor / 1e6, "copy floor",
                                "target >= 0.5x; one read, pixels hashed once (as split files)"))
    releases = root / "home" / "releases"
    release = next(p for p in releases.iterdir()
                   if not p.name.startswith(".") and
                   json.loads((p / "manifest.json").read_text())["label"] == dataset)
    manifest = json.loads((release / "manifest.json").read_text())
    record = manifest["datasets"][dataset]
    n_spots = record["n_public_spots"] + record["n_hidden_spots"]
    pixels = n_spots * PATCH_BYTES
    on_disk = disk_bytes(release, set())
    expression = sum(e["bytes"] for rel, e in manifest["files"].items()
                     if not rel.endswith(".npy"))
    stages.rows.append(BenchRow("realsize", f"{dataset} release on disk", on_disk / 1e9, "GB",
                                (pixels + expression) / 1e9, "pixels + expression",
                                f"target <= 1.1x; {n_spots} spots; source {size / 1e9:.2f} GB"))
    if os.environ.get("BENCH_REALSIZE_EVALUATE", "1") == "0":
        return source
    stages.run(dataset, "staging (2 tracks, evaluation + validation)",
               [_STAGE_SCRIPT, manifest["release_id"], dataset], python=True)
    for name in baselines:
        limits = CNN_LIMITS if name == "cnn-delta" else []
        stages.run(dataset, f"evaluate {name} (raw)",
                   ["evaluate", f"spared-bench/baseline-{name}:1", "--release", dataset,
                    "--tracks", "raw", *limits])
    return source


def run(quick: bool) -> list[BenchRow]:
    """Measure every stage at 224 px; see the module docstring."""
    base = os.environ.get("BENCH_REALSIZE_DIR")
    root = Path(tempfile.mkdtemp(prefix="bench-realsize-", dir=base))
    stages = _Stages(root / "home")
    try:
        plan = ([(MID, 2000, ["mean", "ridge"])] if quick else
                [(MID, None, ["mean", "ridge"]),
                 (LARGEST, None, ["mean", "ridge", "knn", "cnn-delta"])])
        only = os.environ.get("BENCH_REALSIZE_ONLY")
        if only:
            plan = [step for step in plan if step[0] in only.split(",")]
        sources = [_one_dataset(stages, root, d, cap, b) for d, cap, b in plan]
        releases = root / "home" / "releases"
        seen: set[tuple[int, int]] = set()
        disk_bytes(releases, seen)  # every inode so far: the next count is what is new
        changed = root / "src-changed"
        stages.run(CHANGED, "synth (changed dataset)",
                   ["data", "synth", "--size", "tiny", "--datasets", CHANGED, "--patch-size",
                    str(SIDE), "--out", str(changed)])
        stages.run(CHANGED, "second release (one dataset changed)",
                   ["data", "release", *map(str, sources), str(changed / f"{CHANGED}.h5ad"),
                    "--label", "second"])
        added = disk_bytes(releases, seen)
        second = next(p for p in releases.iterdir() if not p.name.startswith(".") and
                      json.loads((p / "manifest.json").read_text())["label"] == "second")
        own = sum(e["bytes"] for rel, e in
                  json.loads((second / "manifest.json").read_text())["files"].items()
                  if f"/{CHANGED}/" in rel)
        stages.rows.append(BenchRow("realsize", "second release: bytes added", added / 1e6, "MB",
                                    own / 1e6, "changed dataset's bytes", "target <= 1.1x"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return stages.rows
