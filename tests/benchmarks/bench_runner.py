"""Per-job overhead of the docker runner against a bare ``docker run --rm`` of the same image.

A no-op image (FROM the offline base; its command only touches /output/predictions.npy) runs
through ``run_container`` (resolve, create with every isolation setting, start, wait, logs,
output check, remove) and through ``docker run --rm`` in a subprocess with the same mounts and
user, interleaved, in the same process. Target: the runner at most 1.5x the bare run.
Needs root or a running engine: it calls scripts/ensure_docker.sh and build_base_image.sh.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import docker

from evaluator.runners import RunLimits, RunOutcome, docker_client, run_container
from tests.benchmarks.harness import BenchRow

REPO = Path(__file__).resolve().parents[2]
NOOP_TAG = "spared-bench-bench/noop:latest"


def _prepare() -> str:
    """Make sure the engine and the base image exist; build the no-op image; return its tag."""
    for script, *args in (("ensure_docker.sh",), ("build_base_image.sh", "--no-torch")):
        subprocess.run([str(REPO / "scripts" / script), *args], check=True,
                       stdout=subprocess.DEVNULL)
    version = (REPO / "images" / "base" / "offline" / "VERSION").read_text().strip()
    dockerfile = (f"FROM spared-bench/base:{version}\n"
                  'CMD ["/bin/sh", "-c", ": > /output/predictions.npy"]\n')
    with contextlib.closing(docker_client()) as client:
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=NOOP_TAG,
                            network_mode="none", rm=True)
    return NOOP_TAG


def _bare_run(tag: str, input_dir: Path, output_dir: Path) -> float:
    output_dir.mkdir()
    output_dir.chmod(0o777)
    start = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", "--user", "10001:10001",
                    "-v", f"{input_dir}:/input:ro", "-v", f"{output_dir}:/output", tag],
                   check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if not (output_dir / "predictions.npy").exists():
        raise RuntimeError(f"bare docker run of {tag} wrote no predictions in {output_dir}")
    return elapsed


def _runner_run(tag: str, input_dir: Path, output_dir: Path, limits: RunLimits,
                client: docker.DockerClient | None) -> tuple[float, RunOutcome]:
    start = time.perf_counter()
    outcome = run_container(tag, input_dir, output_dir, limits, client=client)
    elapsed = time.perf_counter() - start
    if outcome.status != "succeeded":
        raise RuntimeError(f"runner job on {tag} ended {outcome.status}: {outcome.message}")
    return elapsed, outcome


def run(quick: bool) -> list[BenchRow]:
    """Time ``repeats`` no-op jobs each way, interleaved; report medians and ratios."""
    tag = _prepare()
    repeats = 4 if quick else 12
    limits = RunLimits(timeout_s=60, mem_limit_gb=0.5, cpus=1, pids_limit=64, tmp_size_mb=16)
    bare: list[float] = []
    fresh: list[float] = []
    reused: list[float] = []
    outcomes: list[RunOutcome] = []
    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp, \
            contextlib.closing(docker_client()) as client:
        root = Path(tmp)
        root.chmod(0o755)
        input_dir = root / "input"
        input_dir.mkdir(mode=0o755)
        (input_dir / "task.json").write_text("{}")
        # one warm-up each: first-use costs (image layers in page cache, client imports)
        _bare_run(tag, input_dir, root / "warm-bare")
        _runner_run(tag, input_dir, root / "warm-runner", limits, client)
        for i in range(repeats):
            bare.append(_bare_run(tag, input_dir, root / f"bare-{i}"))
            elapsed, _ = _runner_run(tag, input_dir, root / f"fresh-{i}", limits, None)
            fresh.append(elapsed)
            elapsed, outcome = _runner_run(tag, input_dir, root / f"reused-{i}", limits, client)
            reused.append(elapsed)
            outcomes.append(outcome)
    bare_s = statistics.median(bare)

    def phase(name: str) -> float:
        return statistics.median(getattr(o.durations, name) for o in outcomes)

    phases = ", ".join(f"{name.removesuffix('_s')} {phase(name) * 1000:.0f} ms"
                       for name in ("resolve_s", "create_s", "run_s", "collect_s", "remove_s"))
    return [
        BenchRow("runner", f"run_container, client reused (median of {repeats})",
                 statistics.median(reused), "s/job", bare_s, "docker run --rm",
                 note=phases),
        BenchRow("runner", f"run_container, new client per job (median of {repeats})",
                 statistics.median(fresh), "s/job", bare_s, "docker run --rm",
                 note="target <= 1.5x"),
        BenchRow("runner", "docker run --rm (subprocess)", bare_s, "s/job", None,
                 note=f"min {min(bare):.3f} s, max {max(bare):.3f} s"),
    ]
