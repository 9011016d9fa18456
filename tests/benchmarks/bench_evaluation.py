"""A full evaluation of the `mean` baseline on the `demo` release, its wall time split up.

The demo datasets (5, ≤ 900 spots, 16×16 patches; ``--quick``: the 2 smallest) are synthesized
into a temporary folder and released there; SpaCKLE's training is measured by bench_completion,
so its layer is pre-filled with the median-completed one to keep this benchmark on the
evaluation path. Every (dataset, track) job is staged, run in an isolated container, validated
and scored (``evaluator.jobs.run_jobs``), after one warm-up job (image layers and the scorer's
JIT compiled; its cold figures are reported apart).

Figures per job, each next to a reference measured in the same process:
- engine overhead (resolve, create, collect, remove: all but the model's run and validation)
  vs. a bare ``docker run --rm --network none <image> true``;
- model time in the container vs. the same predict.py as a local process (no container) on
  the same staged inputs;
- scoring (truth load + metrics) vs. the read floor (np.load + a plain numpy masked MSE);
- staging, cold (hard links + task.json) vs. copying the same files, and cached vs. cold;
- the job's total vs. its model time.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from evaluator.jobs import (
    DockerExecutor,
    LocalExecutor,
    TaskSettings,
    plan_jobs,
    run_jobs,
    stage_evaluation_inputs,
)
from evaluator.runners import RunLimits, docker_client
from tests.benchmarks.harness import BenchRow, build_demo_release

REPO = Path(__file__).resolve().parents[2]
IMAGE = "spared-bench/baseline-mean:1"
SETTINGS = TaskSettings(time_limit_s=300, device="cpu", seed=0)
LIMITS = RunLimits(timeout_s=300, mem_limit_gb=4, cpus=1)


def _bare_docker_run_s(repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "true"],
                       check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def _read_floor_s(release, datasets: list[str]) -> float:
    """Per dataset: load the truth's arrays and compute a masked MSE with plain numpy."""
    import anndata as ad

    start = time.perf_counter()
    for name in datasets:
        truth = ad.read_h5ad(release.truth_path(name))
        values = np.asarray(truth.layers["c_d_log1p"], dtype=np.float32)
        mask = np.asarray(truth.layers["mask"])
        pred = np.zeros_like(values)
        float(((pred - values) ** 2)[mask].mean())
    return (time.perf_counter() - start) / len(datasets)


def run(quick: bool = False) -> list[BenchRow]:
    """Run the benchmark (``quick``: two small demo datasets)."""
    subprocess.run(["bash", str(REPO / "scripts/build_baselines.sh"), "mean"], check=True,
                   capture_output=True)
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="bench-evaluation-") as tmp:
        root = Path(tmp)
        release = build_demo_release(root, quick)
        plans = plan_jobs(release, None, None)
        case = f"demo {len(release.datasets)} datasets, {len(plans)} jobs"
        executor = DockerExecutor(IMAGE, client=docker_client())
        staging = root / "staging"

        # cold staging of every job vs copying the same files
        cold = []
        copy_s = []
        for plan in plans:
            start = time.perf_counter()
            stage_evaluation_inputs(release, plan.dataset, plan.track, SETTINGS, staging)
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            target = root / "copies" / plan.dataset / plan.track
            target.mkdir(parents=True)
            for source in (release.train_path(plan.dataset, plan.track),
                           release.test_inputs_path(plan.dataset)):
                (target / source.name).write_bytes(source.read_bytes())
            copy_s.append(time.perf_counter() - start)

        warm = run_jobs(executor, release, plans[:1], purpose="evaluation", settings=SETTINGS,
                        limits=LIMITS, staging_root=staging, work_dir=root)[0]
        start = time.perf_counter()
        results = run_jobs(executor, release, plans, purpose="evaluation", settings=SETTINGS,
                           limits=LIMITS, staging_root=staging, work_dir=root)
        wall_s = time.perf_counter() - start
        failed = [r for r in results if not r.succeeded]
        if failed:
            raise RuntimeError(f"benchmark job failed: {failed[0].status}: {failed[0].message}")
        local = run_jobs(LocalExecutor(f"python {REPO}/submissions/baselines/mean/predict.py"),
                         release, plans, purpose="evaluation", settings=SETTINGS, limits=LIMITS,
                         staging_root=staging, work_dir=root)
        bare_s = _bare_docker_run_s()
        floor_s = _read_floor_s(release, release.datasets)

    def mean(values: list[float]) -> float:
        return statistics.fmean(values)

    engine = mean([r.timings.engine_s for r in results])
    model = mean([r.timings.model_s for r in results])
    score = mean([r.timings.score_s for r in results])
    total = mean([r.timings.total_s for r in results])
    cached = mean([r.timings.stage_s for r in results])
    rows += [
        BenchRow("evaluation", f"{case}: engine overhead/job", engine, "s", bare_s,
                 "bare docker run true",
                 note=f"validate {mean([r.timings.validate_s for r in results]) * 1e3:.1f} ms"),
        BenchRow("evaluation", f"{case}: model time/job (container)", model, "s",
                 mean([r.timings.model_s for r in local]), "same predict.py, local process"),
        BenchRow("evaluation", f"{case}: scoring/job", score, "s", floor_s,
                 "read floor: truth load + numpy masked MSE"),
        BenchRow("evaluation", f"{case}: staging/job, cold", mean(cold), "s", mean(copy_s),
                 "copying the same files"),
        BenchRow("evaluation", f"{case}: staging/job, cached", cached, "s", mean(cold),
                 "cold staging"),
        BenchRow("evaluation", f"{case}: total/job", total, "s", model, "model time/job",
                 note=f"local runner total/job {mean([r.timings.total_s for r in local]):.2f} s"),
        BenchRow("evaluation", f"{case}: whole evaluation", wall_s, "s",
                 sum(r.timings.model_s for r in results), "sum of model times"),
        BenchRow("evaluation", f"{case}: first job (cold)", warm.timings.total_s, "s", total,
                 "warm total/job",
                 note=f"scoring {warm.timings.score_s:.2f} s (scorer JIT), "
                      f"engine {warm.timings.engine_s:.2f} s"),
    ]
    return rows
