"""Image archives against a real engine: a worker loads a kept archive its engine lacks; an
archive whose layers the engine refuses is rejected at intake and nothing is recorded."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from evaluator.orchestrator import SubmissionRejected, ensure_image, submit_image_archive
from evaluator.orchestrator.images import archive_path
from evaluator.store import Submission, session_scope
from tests.orchestrator.archives import make_archive, tar_bytes
from tests.orchestrator.conftest import BenchEnv

pytestmark = pytest.mark.docker


def test_worker_engine_loads_a_kept_archive(tmp_path: Path, docker_engine: Any) -> None:
    from docker.errors import ImageNotFound

    data, image_id = make_archive(nonce=f"ensure-{tmp_path.name}")
    images_dir = tmp_path / "images"
    missing = ensure_image(docker_engine, image_id, images_dir)
    assert missing is not None and "found neither" in missing
    archive_path(images_dir, image_id).parent.mkdir(parents=True)
    archive_path(images_dir, image_id).write_bytes(data)
    try:
        assert ensure_image(docker_engine, image_id, images_dir) is None
        assert docker_engine.images.get(image_id).id == image_id
        assert ensure_image(docker_engine, image_id, images_dir) is None
    finally:
        with contextlib.suppress(ImageNotFound):
            docker_engine.images.remove(image_id, force=True)
    assert ensure_image(None, image_id, images_dir) == "no Docker engine answers on this worker"


def test_an_archive_the_engine_refuses_is_rejected(published: BenchEnv, tmp_path: Path,
                                                   docker_engine: Any) -> None:
    # a layer that is a tar (intake's own checks pass) whose digest is not its diff_id
    layer = tar_bytes({"f.txt": b"the config lists another layer"})
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/true"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": ["sha256:" + "0" * 64]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["broken:1"],
                            "Layers": ["l/layer.tar"]}]).encode()
    path = tmp_path / "broken.tar"
    path.write_bytes(tar_bytes({config_name: config, "l/layer.tar": layer,
                                "manifest.json": manifest}))
    with pytest.raises(SubmissionRejected, match="the Docker engine refused to load it"):
        submit_image_archive(published.bench(), path, name="broken", team="lab",
                             client=docker_engine)
    with session_scope(published.bench().engine) as session:
        assert session.exec(select(Submission)).all() == []
    assert not any(p.is_file() for p in published.bench().images_dir.rglob("*"))


def test_a_layer_that_is_not_a_tar_is_refused_before_the_engine(published: BenchEnv,
                                                                tmp_path: Path) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers",
                                    "diff_ids": ["sha256:" + "0" * 64]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "Layers": ["l/layer.tar"]}]).encode()
    path = tmp_path / "broken.tar"
    path.write_bytes(tar_bytes({config_name: config, "l/layer.tar": b"not a tar" * 64,
                                "manifest.json": manifest}))
    with pytest.raises(SubmissionRejected, match=r"image archive: layer l/layer\.tar: expected a "
                                                 r"tar header at byte 0, found something else"):
        submit_image_archive(published.bench(), path, name="broken", team="lab", load=False)
