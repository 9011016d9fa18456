"""Fixtures of the runner tests: a real engine, the offline base image, the hostile images.

The session fixture makes what it needs on a fresh machine: scripts/ensure_docker.sh (installs
and starts an engine) and scripts/build_base_image.sh --no-torch (debootstrap base, minutes the
first time, a second when the images exist), then builds each folder under images/ FROM the base
with the network off. Every docker test is checked for leftover job containers afterwards.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from evaluator.runners import JOB_LABEL, RunLimits, docker_client

REPO = Path(__file__).resolve().parents[2]
IMAGES_DIR = Path(__file__).parent / "images"
BASE_VERSION = (REPO / "images" / "base" / "offline" / "VERSION").read_text().strip()
BASE_IMAGE = f"spared-bench/base:{BASE_VERSION}"
TEST_IMAGE_PREFIX = "spared-bench-test"
SESSION_LABEL = "org.sparedbench.test-session"
SESSION_ID = uuid.uuid4().hex
"""Containers of this test session carry SESSION_LABEL=SESSION_ID, so the leftover check is
not confused by other sessions sharing the engine."""
SESSION_LABELS = {SESSION_LABEL: SESSION_ID}


def _script(name: str, *args: str) -> None:
    done = subprocess.run([str(REPO / "scripts" / name), *args], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"scripts/{name} {' '.join(args)} failed with {done.returncode}:\n"
                    f"{done.stdout}\n{done.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    """A client of a running engine that holds the offline base image."""
    _script("ensure_docker.sh")
    _script("build_base_image.sh", "--no-torch")
    with contextlib.closing(docker_client()) as client:
        yield client


@pytest.fixture(scope="session")
def test_images(engine: docker.DockerClient) -> dict[str, str]:
    """Build every tests/runners/images/<name> FROM the base, network off; name -> tag."""
    tags = {}
    for folder in sorted(p for p in IMAGES_DIR.iterdir() if (p / "Dockerfile").is_file()):
        tag = f"{TEST_IMAGE_PREFIX}/{folder.name}:latest"
        try:
            engine.images.build(path=str(folder), tag=tag, network_mode="none", rm=True,
                                forcerm=True, buildargs={"BASE_IMAGE": BASE_IMAGE})
        except docker.errors.BuildError as error:
            lines = "".join(str(chunk.get("stream", chunk)) for chunk in error.build_log)
            pytest.fail(f"building {tag} failed: {error}\n{lines}", pytrace=False)
        tags[folder.name] = tag
    return tags


@pytest.fixture
def job_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(input, output) folders of one job: a world-readable input with a small task.json."""
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    task = {"contract_version": 1, "dataset": "synthetic", "track": "raw",
            "genes": ["G1", "G2", "G3"], "n_test_spots": 4, "patch_shape": [8, 8, 3],
            "time_limit_s": 30, "device": "cpu", "seed": 0}
    (input_dir / "task.json").write_text(json.dumps(task))
    input_dir.chmod(0o755)
    (input_dir / "task.json").chmod(0o644)
    return input_dir, tmp_path / "output"


@pytest.fixture
def small_limits() -> RunLimits:
    """Tight limits that keep hostile images cheap on a shared 2-core machine."""
    return RunLimits(timeout_s=60, mem_limit_gb=0.5, cpus=0.5, pids_limit=64, tmp_size_mb=16,
                     output_max_mb=8, log_max_kb=16)


def job_containers(client: docker.DockerClient) -> list[str]:
    """Ids of this session's job containers on the engine, running or not."""
    filters = {"label": [JOB_LABEL, f"{SESSION_LABEL}={SESSION_ID}"]}
    return [c.id for c in client.containers.list(all=True, filters=filters)]


def leftover_volumes(client: docker.DockerClient, before: set[str]) -> list[str]:
    """Volumes made since ``before`` that no container uses: left behind.

    Other sessions share the engine: their volumes in use by a container are theirs.
    """
    return sorted(v.name for v in client.volumes.list() if v.name not in before
                  and not client.containers.list(all=True, filters={"volume": v.name}))


def job_volumes(client: docker.DockerClient) -> list[str]:
    """Names of this session's job volumes (/output tmpfs) on the engine."""
    filters = {"label": [JOB_LABEL, f"{SESSION_LABEL}={SESSION_ID}"]}
    return [v.name for v in client.volumes.list(filters=filters)]


@pytest.fixture(autouse=True)
def _no_leftover_containers(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every docker test, no job container or volume may remain on the engine."""
    yield
    if request.node.get_closest_marker("docker") is None:
        return
    with contextlib.closing(docker_client()) as client:
        leftovers = job_containers(client)
        volumes = job_volumes(client)
    assert leftovers == [], f"job containers left behind: {leftovers}"
    assert volumes == [], f"job volumes left behind: {volumes}"
