"""The submission registry: authors push with their team token (only missing layers travel), a
known image is refused before any upload, workers pull by digest.

Through the real parts: Debian's ``docker-registry`` (distribution 2.8) started by
``spared-bench registry serve``, the web app (``spared-bench serve``) as its token authority,
the Docker engine pushing and pulling, the CLI and a worker as processes.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from evaluator.orchestrator import wait_for
from tests.orchestrator.conftest import BenchEnv, publish_small
from tests.orchestrator.served import registry_service, served_app
from tests.store.dbsupport import REPO

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLI = str(Path(sys.executable).parent / "spared-bench")
FAST = ["--lease-s", "4", "--heartbeat-s", "0.5", "--reap-interval-s", "1",
        "--retry-delay-s", "1", "--timeout-s", "120", "--mem-limit-gb", "1", "--cpus", "1"]


def _cli(env: dict[str, str], *argv: str, timeout: float = 300
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *argv], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def _repositories(home: Path) -> set[str]:
    """Repositories the registry stores (read from its storage folder)."""
    root = home / "registry" / "storage" / "docker" / "registry" / "v2" / "repositories"
    return {str(p.parent.relative_to(root)) for p in root.rglob("_manifests")}


def _team(env: dict[str, str], url: str, name: str) -> tuple[str, int]:
    """A new team's token and id (from its registry namespace, ``team-<id>``)."""
    assert _cli(env, "team", "create", name).returncode == 0
    token = _cli(env, "team", "token", name).stdout.strip()
    info = requests.get(f"{url}/api/registry", headers={"Authorization": f"Bearer {token}"},
                        timeout=10).json()
    return token, int(info["namespace"].removeprefix("team-"))


def test_an_author_pulls_checks_pushes_versions_withdraws_and_downloads(
        sqlite_bench_env: BenchEnv, small_release: Any, build_image: Any, docker_engine: Any,
        remove_worker_containers: list[str], tmp_path: Path) -> None:
    env = sqlite_bench_env
    bench = publish_small(env, small_release)
    v1 = build_image("ok", nonce="registry-v1")
    v2 = build_image("ok", nonce="registry-v2")
    with registry_service(env) as (url, host, service_env):
        token, team_id = _team(service_env, url, "lab")
        author = {**os.environ, "SPARED_BENCH_HOME": str(tmp_path / "author"),
                  "SPARED_BENCH_TOKEN": token, "SPARED_BENCH_PROGRESS": "0",
                  "OMP_NUM_THREADS": "1"}

        # 1. The public data, then `check` of the image on it (the service's own data).
        pulled = _cli(author, "data", "pull", "--server", url)
        assert pulled.returncode == 0, pulled.stderr
        checked = _cli(author, "check", v1, "--release", small_release.release_id[:12],
                       "--server", url, timeout=600)
        assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
        assert "check passed" in checked.stdout

        # 2. Version 1 pushed: every layer sent, submitted by digest.
        first = _cli(author, "submit", v1, "--name", "Model One", "--server", url, "--json")
        assert first.returncode == 0, first.stderr
        receipt1 = json.loads(first.stdout)
        assert receipt1["version"] == 1 and receipt1["image_digest"] == v1
        assert f"pushing to {host}/team-{team_id}" in first.stderr
        assert f"pushed {len(docker_engine.images.get(v1).attrs['RootFS']['Layers'])} " \
            "layer(s), 0 already" in first.stderr
        assert _repositories(env.home) == {f"team-{team_id}/model-one"}

        # 3. Version 2 (the same base, its own code layer): only the layers v1 lacks travel.
        layers1, layers2 = ({*docker_engine.images.get(v).attrs["RootFS"]["Layers"]}
                            for v in (v1, v2))
        new = len(layers2 - layers1)
        assert len(layers2) - new >= 1  # the base is shared
        second = _cli(author, "submit", v2, "--name", "Model One", "--server", url, "--json")
        assert second.returncode == 0, second.stderr
        receipt2 = json.loads(second.stdout)
        assert receipt2["version"] == 2 and receipt2["supersedes"] == receipt1["submission_id"]
        assert f"pushed {new} layer(s), {len(layers2) - new} already in the registry" in \
            second.stderr, second.stderr

        # 4. A known image under another name: refused before any upload (no repository).
        again = _cli(author, "submit", v1, "--name", "Copy", "--server", url)
        assert again.returncode == 2 and "already submitted" in again.stderr
        assert "pushing" not in again.stderr and "Traceback" not in again.stderr
        assert _repositories(env.home) == {f"team-{team_id}/model-one"}

        # 5. The worker's engine lacks both images: it pulls them by digest.
        for image_id in (v1, v2):
            docker_engine.images.remove(image_id, force=True)
        remove_worker_containers.append("w-registry")
        env.start_worker("w-registry", *FAST, env=service_env)
        for receipt in (receipt1, receipt2):
            final = wait_for(bench, receipt["submission_id"], timeout_s=300, poll_s=0.5)
            assert final.counts == {"succeeded": 2}, (final, env.worker_log("w-registry"))
        assert "pulling " in env.worker_log("w-registry")
        assert docker_engine.images.get(v2).id == v2

        # 6. Version 2 supersedes version 1 on the leaderboard; v1's page stays reachable.
        board = requests.get(f"{url}/api/leaderboard", timeout=30).json()
        ids = {row["submission_id"] for row in board["entries"]}
        assert receipt2["submission_id"] in ids and receipt1["submission_id"] not in ids
        assert requests.get(f"{url}/entries/{receipt1['submission_id']}",
                            timeout=30).status_code == 200

        # 7. The owner downloads the hidden-split predictions, then withdraws the entry.
        out = tmp_path / "downloads"
        got = _cli(author, "predictions", "lab/Model One", "--server", url, "--out", str(out))
        assert got.returncode == 0, got.stderr
        assert "2 predictions file(s)" in got.stdout and len(list(out.rglob("*.npy"))) == 2
        gone = _cli(author, "withdraw", "lab/Model One", "--server", url)
        assert gone.returncode == 0, gone.stderr
        board = requests.get(f"{url}/api/leaderboard", timeout=30).json()
        assert not {receipt1["submission_id"], receipt2["submission_id"]} & \
            {row["submission_id"] for row in board.get("entries", [])}, board


def _jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _bomb_image(docker_engine: Any, size_mb: int) -> str:
    """A one-layer image whose layer is a few hundred KB gzipped and ``size_mb`` unpacked."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = size_mb * 2**20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    docker_engine.api.import_image_from_data(
        gzip.compress(raw.getvalue(), 1), repository="spared-bench-test/bomb",
        tag=str(size_mb), changes=['CMD ["/zeros"]'])
    return str(docker_engine.images.get(f"spared-bench-test/bomb:{size_mb}").id)


def test_namespaces_tokens_and_refusals(sqlite_bench_env: BenchEnv, build_image: Any,
                                        docker_engine: Any, tmp_path: Path) -> None:
    env = sqlite_bench_env
    image = build_image("ok", nonce="registry-ns")
    bomb = _bomb_image(docker_engine, 48)
    with registry_service(env) as (url, host, service_env):
        lab, lab_id = _team(service_env, url, "lab")
        rival, rival_id = _team(service_env, url, "rival")

        # The realm: a team token as Basic password; scopes granted inside its namespace only.
        realm = f"{url}/api/registry/token"
        scopes = [f"repository:team-{lab_id}/x:pull,push",
                  f"repository:team-{rival_id}/x:pull,push"]
        answer = requests.get(realm, params={"service": "spared-bench-registry",
                                             "scope": scopes}, auth=("anyone", lab), timeout=10)
        assert answer.status_code == 200
        claims = _jwt_claims(answer.json()["token"])
        assert claims["access"] == [{"type": "repository", "name": f"team-{lab_id}/x",
                                     "actions": ["pull", "push"]}]
        assert claims["aud"] == "spared-bench-registry" and claims["exp"] > time.time()
        bad = requests.get(realm, params={"service": "spared-bench-registry"},
                           auth=("anyone", "wrong"), timeout=10)
        assert bad.status_code == 401 and "Basic" in bad.headers["WWW-Authenticate"]
        assert requests.get(realm, params={"service": "other"}, auth=("a", lab),
                            timeout=10).status_code == 400
        info = requests.get(f"{url}/api/registry", headers={"Authorization": f"Bearer {lab}"},
                            timeout=10).json()
        assert info["registry"] == host and info["namespace"] == f"team-{lab_id}"

        # Plain docker login + push (a config folder of its own): own namespace only.
        docker_env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
        login = subprocess.run(["docker", "login", host, "-u", "lab", "--password-stdin"],
                               input=lab, env=docker_env, capture_output=True, text=True,
                               timeout=60)
        assert login.returncode == 0, login.stderr
        refused_login = subprocess.run(["docker", "login", host, "-u", "x",
                                        "--password-stdin"], input="nope", env=docker_env,
                                       capture_output=True, text=True, timeout=60)
        assert refused_login.returncode != 0
        mine, theirs = f"{host}/team-{lab_id}/by-hand", f"{host}/team-{rival_id}/by-hand"
        for target in (mine, theirs):
            subprocess.run(["docker", "tag", image, f"{target}:v1"], check=True, timeout=60)
        pushed = subprocess.run(["docker", "push", f"{mine}:v1"], env=docker_env,
                                capture_output=True, text=True, timeout=300)
        assert pushed.returncode == 0, pushed.stderr
        digest = pushed.stdout.split("digest: ")[1].split()[0]
        denied = subprocess.run(["docker", "push", f"{theirs}:v1"], env=docker_env,
                                capture_output=True, text=True, timeout=300)
        assert denied.returncode != 0 and "denied" in (denied.stderr + denied.stdout)
        for target in (mine, theirs):
            subprocess.run(["docker", "rmi", f"{target}:v1"], capture_output=True, timeout=60)

        lab_env = {**service_env, "SPARED_BENCH_TOKEN": lab}
        rival_env = {**service_env, "SPARED_BENCH_TOKEN": rival}
        # Another team cannot submit (nor pull) lab's pushed image; a tag is not a digest.
        stolen = _cli(rival_env, "submit", f"{mine}@{digest}", "--name", "stolen",
                      "--server", url)
        assert stolen.returncode == 2 and f"namespace team-{rival_id}/" in stolen.stderr
        tagged = requests.post(f"{url}/api/submissions",
                               params={"name": "t", "image": f"{mine}:v1"},
                               headers={"Authorization": f"Bearer {lab}"}, timeout=30)
        assert tagged.status_code == 422 and "by digest" in tagged.json()["error"]
        elsewhere = _cli(lab_env, "submit", f"example.org/team-{lab_id}/x@{digest}",
                         "--name", "x", "--server", url)
        assert elsewhere.returncode == 2 and "this service's registry" in elsewhere.stderr
        # The one pushed by hand is submitted by digest.
        by_hand = _cli(lab_env, "submit", f"{mine}@{digest}", "--name", "by hand",
                       "--server", url, "--json")
        assert by_hand.returncode == 0, by_hand.stderr
        assert json.loads(by_hand.stdout)["image_digest"] == image
        # Precheck: the same image is refused before an upload, whoever asks.
        pre = requests.get(f"{url}/api/submissions/precheck",
                           params={"name": "again", "image_id": image},
                           headers={"Authorization": f"Bearer {rival}"}, timeout=10)
        assert pre.status_code == 422 and "already submitted" in pre.json()["error"]

    # A layer that unpacks past the limit (48 MB of zeros, < 1 MB pushed): refused by the
    # bounded scan before any engine pulls it.
    with registry_service(env, SPARED_BENCH_MAX_IMAGE_MB="40") as (url, _, service_env):
        boom = _cli({**service_env, "SPARED_BENCH_TOKEN": lab}, "submit", bomb, "--name",
                    "bomb", "--server", url)
        assert boom.returncode == 2, boom.stderr
        assert "unpack" in boom.stderr and "Traceback" not in boom.stderr
        with contextlib.suppress(Exception):
            docker_engine.images.remove(bomb, force=True)

    # Without a registry the service says so.
    with served_app(env.env, env.home) as plain:
        missing = requests.get(f"{plain}/api/registry",
                               headers={"Authorization": f"Bearer {lab}"}, timeout=10)
        assert missing.status_code == 404 and "SPARED_BENCH_REGISTRY_URL" in \
            missing.json()["error"]


@pytest.mark.parametrize("bench_env", ["postgres+redis"], indirect=True)
def test_a_worker_with_only_urls_and_a_credential(
        bench_env: BenchEnv, small_release: Any, build_image: Any, docker_engine: Any,
        remove_worker_containers: list[str], tmp_path: Path) -> None:
    """A worker whose home is empty (no release files, no image archives, no registry key)
    runs a pushed submission: the store and queue by URL, the image pulled by digest with a
    pull-only token from the service, the job's files fetched by content address."""
    env = bench_env
    bench = publish_small(env, small_release)
    image = build_image("ok", nonce="registry-remote")
    with registry_service(env) as (url, host, service_env):
        token, team_id = _team(service_env, url, "lab")
        made = _cli(service_env, "workers", "add", "remote-1")
        assert made.returncode == 0, made.stderr
        worker_token = made.stdout.strip()
        author = {**service_env, "SPARED_BENCH_TOKEN": token}
        sent = _cli(author, "submit", image, "--name", "remote", "--server", url, "--json")
        assert sent.returncode == 0, sent.stderr
        receipt = json.loads(sent.stdout)
        docker_engine.images.remove(image, force=True)

        # A worker token gets pull tokens only for the image of a job it is running: none yet.
        realm = f"{url}/api/worker/registry-token"
        headers = {"Authorization": f"Bearer {worker_token}"}
        for repository in (f"team-{team_id}/never-submitted", f"team-{team_id}/remote"):
            early = requests.get(realm, params={"repository": repository}, headers=headers,
                                 timeout=10)
            assert early.status_code == 403 and "running" in early.json()["error"]
        team_token = requests.get(realm, params={"repository": f"team-{team_id}/remote"},
                                  headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert team_token.status_code == 403

        remote_home = tmp_path / "remote-home"
        remote_home.mkdir()
        remove_worker_containers.append("remote-1")
        env.start_worker("remote-1", *FAST, "--server", url, env={
            "SPARED_BENCH_HOME": str(remote_home), "SPARED_BENCH_WORKER_TOKEN": worker_token})
        final = wait_for(bench, receipt["submission_id"], timeout_s=300, poll_s=0.5)
        log = env.worker_log("remote-1")
        assert final.counts == {"succeeded": 2}, log[-3000:]
        assert f"pulling {host}/team-{team_id}/remote@sha256:" in log
        assert docker_engine.images.get(image).id == image
        assert not (remote_home / "registry").exists() and not (remote_home / "images").exists()
        assert not (remote_home / "releases").exists()
