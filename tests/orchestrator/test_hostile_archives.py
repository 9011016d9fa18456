"""Hostile upload archives (issue 17): each is refused with a clear message before anything
runs or loads, and a refused upload leaves no archive on disk; an accepted one names nothing
on the engine (its own tags are never applied).

Most go through the web app's path (``load=False``, no engine); the tag tests load for real.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from evaluator.orchestrator import (
    AuthError,
    Bench,
    SubmissionRejected,
    create_team,
    ensure_image,
    submit_image_archive,
)
from evaluator.orchestrator.images import MAX_ARCHIVE_MEMBERS, MAX_IMAGE_LAYERS, archive_path
from evaluator.store import Submission, session_scope
from tests.orchestrator.archives import make_archive, tar_bytes
from tests.orchestrator.conftest import BenchEnv


def build(layers: list[bytes], *, tags: tuple[str, ...] = ("handmade:1",),
          extra: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]] = (),
          nonce: str = "0", run_config: dict[str, Any] | None = None) -> tuple[bytes, str]:
    """A ``docker save`` style archive of ``layers`` (bytes as stored) plus extra members."""
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/true"]} if run_config is None else run_config,
        "rootfs": {"type": "layers",
                   "diff_ids": [f"sha256:{hashlib.sha256(x).hexdigest()}" for x in layers]},
        "nonce": nonce}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = [f"l{i}/layer.tar" for i in range(len(layers))]
    manifest = json.dumps([{"Config": config_name, "RepoTags": list(tags),
                            "Layers": names}]).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        add(config_name, config)
        for name, layer in zip(names, layers, strict=True):
            add(name, layer)
        for item in extra:
            if isinstance(item, tuple):
                info, data = item
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(item)
        add("manifest.json", manifest)
    return buffer.getvalue(), f"sha256:{hashlib.sha256(config).hexdigest()}"


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.fixture
def small_bench(published: BenchEnv) -> Bench:
    """The published bench with a 16 MB image limit (uploads and unpacked images)."""
    bench = Bench.open(published.settings().model_copy(update={"max_image_mb": 16}))
    published.benches.append(bench)
    return bench


def archives_left(bench: Bench) -> list[str]:
    """Every file under the images folder but the intake's lock file."""
    images = Path(bench.images_dir)
    return sorted(str(p.relative_to(images)) for p in images.rglob("*")
                  if p.is_file() and p.name != ".intake.lock") if images.exists() else []


def refused(bench: Bench, tmp_path: Path, data: bytes, match: str) -> None:
    path = tmp_path / "upload.tar"
    path.write_bytes(data)
    with pytest.raises(SubmissionRejected, match=match):
        submit_image_archive(bench, path, name="hostile", team="lab", load=False)
    assert archives_left(bench) == []
    with session_scope(bench.engine) as session:
        assert session.exec(select(Submission)).all() == []


def test_gzip_bomb_layer_is_refused_by_its_unpacked_size(small_bench: Bench,
                                                         tmp_path: Path) -> None:
    inner = tar_bytes({"zeros.bin": bytes(64 * 2**20)})  # 64 MB of files
    bomb = gzip.compress(inner, compresslevel=9)
    assert len(bomb) < 2**20 and len(bomb) < 16 * 2**20  # well inside the upload limit
    data, _ = build([bomb])
    refused(small_bench, tmp_path, data, r"expected the image to unpack to at most 16 more MB, "
                                         r"found layer l0/layer.tar unpacking to more")
    # the same files, uncompressed but sparse-free and small, pass: the limit is on files
    fine, _ = build([gzip.compress(tar_bytes({"a.bin": bytes(2**20)}))], nonce="ok")
    path = tmp_path / "fine.tar"
    path.write_bytes(fine)
    receipt = submit_image_archive(small_bench, path, name="fine", team="lab", load=False)
    assert receipt.size_bytes == 2**20


def test_too_many_layers_and_members_are_refused(small_bench: Bench, tmp_path: Path) -> None:
    layer = tar_bytes({"f": b"1"})
    many_layers, _ = build([layer] * (MAX_IMAGE_LAYERS + 1))
    refused(small_bench, tmp_path, many_layers,
            rf"expected at most {MAX_IMAGE_LAYERS} layers, found {MAX_IMAGE_LAYERS + 1}")
    crowd = [(member(f"junk/{i}"), b"") for i in range(MAX_ARCHIVE_MEMBERS + 1)]
    many_members, _ = build([layer], extra=crowd)
    refused(small_bench, tmp_path, many_members,
            rf"expected at most {MAX_ARCHIVE_MEMBERS} members, found more")


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_huge_header_is_refused_without_reading_it(small_bench: Bench, tmp_path: Path,
                                                   fmt: int) -> None:
    layer = tar_bytes({"f": b"1"})
    data, _ = build([layer])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        info = tarfile.TarInfo("x" * (8 * 2**20))  # an 8 MB name, inside the 16 MB limit
        archive.addfile(info, io.BytesIO(b""))
    upload = buffer.getvalue()[:-1024] + data  # without its end-of-archive blocks
    assert len(upload) > 8 * 2**20
    tracemalloc.start()
    try:
        refused(small_bench, tmp_path, upload,
                r"expected extended tar headers \(long names, pax\) of at most 65536 bytes")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # the 8 MB name was never read into memory


@pytest.mark.parametrize(("extra", "match"), [
    (member("../escape"), "found one with '..'"),
    (member("l0/../../escape"), "found one with '..'"),
    (member("/etc/cron.d/x"), "found an absolute one"),
    (member("evil", tarfile.SYMTYPE, "/etc/passwd"), "pointing at '/etc/passwd'"),
    (member("evil", tarfile.SYMTYPE, "../../etc/passwd"), "pointing at '../../etc/passwd'"),
    (member("hard", tarfile.LNKTYPE, "manifest.json"), "found 'hard', a hard link"),
    (member("dev", tarfile.CHRTYPE), "found 'dev', a character device"),
    (member("pipe", tarfile.FIFOTYPE), "found 'pipe', a fifo"),
])
def test_unsafe_members_are_refused(small_bench: Bench, tmp_path: Path,
                                    extra: tarfile.TarInfo, match: str) -> None:
    data, _ = build([tar_bytes({"f": b"1"})], extra=[extra])
    refused(small_bench, tmp_path, data, match)


def test_unsafe_paths_inside_a_layer_are_refused(small_bench: Bench, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as layer:
        layer.addfile(tarfile.TarInfo("../../etc/evil"), io.BytesIO(b""))
    data, _ = build([buffer.getvalue()])
    refused(small_bench, tmp_path, data, r"expected paths inside the image, found "
                                         r"'../../etc/evil'")


@pytest.mark.parametrize(("run_config", "match"), [
    ({"Cmd": None, "Entrypoint": None}, r"found neither"),
    ({"Cmd": ["/run"], "Volumes": {"/data": {}}}, r"found VOLUME /data"),
    ({"Cmd": ["/run"], "Volumes": {"/input/cache": {}}}, r"found VOLUME /input/cache"),
])
def test_an_image_that_cannot_start_is_refused_at_intake(small_bench: Bench, tmp_path: Path,
                                                         run_config: dict[str, Any],
                                                         match: str) -> None:
    data, _ = build([tar_bytes({"f": b"1"})], run_config=run_config)
    refused(small_bench, tmp_path, data, match)


def test_links_between_layers_are_accepted(small_bench: Bench, tmp_path: Path) -> None:
    # docker save writes a repeated layer as a relative symlink to its first copy
    layer = tar_bytes({"f": b"12345"})
    data, image_id = build([layer], extra=[member("l1", tarfile.DIRTYPE),
                                           member("l1/layer.tar", tarfile.SYMTYPE,
                                                  "../l0/layer.tar")])
    path = tmp_path / "linked.tar"
    path.write_bytes(data)
    receipt = submit_image_archive(small_bench, path, name="linked", team="lab", load=False)
    assert receipt.image_digest == image_id


def test_an_upload_refused_after_it_was_placed_leaves_no_archive(published: BenchEnv,
                                                                 tmp_path: Path) -> None:
    bench = published.bench()
    with session_scope(bench.engine) as session:
        lab = create_team(session, "lab")
    data, image_id = make_archive(nonce="refused-late")
    path = tmp_path / "late.tar"
    path.write_bytes(data)
    # a baseline by a non-admin team is refused in the final, locked check
    with pytest.raises(AuthError, match="expected an admin team"):
        submit_image_archive(bench, path, name="late", by=lab, baseline=True, load=False)
    assert not archive_path(bench.images_dir, image_id).exists()
    assert archives_left(bench) == []


def test_uploads_racing_for_the_last_slot_keep_one_archive(published: BenchEnv,
                                                           tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from evaluator.orchestrator import LimitExceeded

    bench = Bench.open(published.settings().model_copy(update={"daily_submissions": 1}))
    published.benches.append(bench)
    with session_scope(bench.engine) as session:
        create_team(session, "lab")  # (a team made by racing first uploads is another matter)
    paths = []
    for i in range(6):
        data, _ = make_archive(nonce=f"race-{i}")
        paths.append(tmp_path / f"race-{i}.tar")
        paths[-1].write_bytes(data)

    def upload(i: int) -> str:
        try:
            submit_image_archive(bench, paths[i], name=f"race-{i}", team="lab", load=False)
            return "accepted"
        except LimitExceeded:
            return "refused"

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = sorted(pool.map(upload, range(6)))
    assert outcomes == ["accepted"] + ["refused"] * 5
    with session_scope(bench.engine) as session:
        (submission,) = session.exec(select(Submission)).all()
    assert archives_left(bench) == [archive_path(bench.images_dir, submission.image_digest).name]


def _tags(engine: Any) -> dict[str, str]:
    """Every tag on the engine and the image it names (one listing call: images removed by
    other tests meanwhile are not looked up one by one)."""
    return {tag: image["Id"] for image in engine.api.images()
            for tag in image.get("RepoTags") or () if tag != "<none>:<none>"}


@pytest.mark.docker
@pytest.mark.parametrize("load", [True, False])
def test_an_upload_never_names_an_image(published: BenchEnv, tmp_path: Path,
                                        docker_engine: Any, load: bool) -> None:
    victim = "spared-bench-test/victim:1"
    base = docker_engine.images.list(name="spared-bench/base")[0]
    base.tag(victim)
    before = _tags(docker_engine)
    # the service's own images too (the worker runs its image as root beside the socket)
    service = sorted(t for t in before if t.startswith("spared-bench/"))
    data, image_id = make_archive(nonce=f"tags-{load}-{tmp_path.name}",
                                  tags=(victim, f"spared-bench-test/new-name-{load}:1",
                                        *service))
    path = tmp_path / "tagged.tar"
    path.write_bytes(data)
    bench = published.bench()
    try:
        receipt = submit_image_archive(bench, path, name=f"tagged-{load}", team="lab",
                                       load=load, client=docker_engine)
        if not load:  # the web app keeps it; a worker loads the kept archive
            assert ensure_image(docker_engine, image_id, bench.images_dir) is None
        assert receipt.image_digest == image_id
        after = _tags(docker_engine)
        # no name moved to the upload, none added (other sessions may retag their own images
        # meanwhile: only what the archive named is compared)
        assert image_id not in after.values()
        assert {t: after.get(t) for t in (victim, *service)} == \
            {t: before[t] for t in (victim, *service)}
        assert f"spared-bench-test/new-name-{load}:1" not in after
        assert docker_engine.images.get(image_id).tags == []
        with tarfile.open(archive_path(bench.images_dir, image_id)) as kept:
            manifest = json.loads(kept.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert manifest[0]["RepoTags"] is None
        with session_scope(bench.engine) as session:
            assert session.exec(select(Submission.image_ref)).one() == image_id
    finally:
        # should the stripping ever break, put every name back before anything else runs
        for tag, owner in before.items():
            if owner != image_id and _tags(docker_engine).get(tag) == image_id:
                docker_engine.images.get(owner).tag(tag)
        docker_engine.images.remove(victim)
        for tag in (f"spared-bench-test/new-name-{load}:1",):
            if tag in _tags(docker_engine):
                docker_engine.images.remove(tag)
        if image_id in {i.id for i in docker_engine.images.list(all=True)} \
                and not docker_engine.images.get(image_id).tags:
            docker_engine.images.remove(image_id, force=True)


@pytest.mark.docker
def test_an_image_with_a_volume_is_refused_when_registered(published: BenchEnv,
                                                           docker_engine: Any) -> None:
    from evaluator.orchestrator import register_image
    from tests.orchestrator.conftest import BASE_IMAGE

    context = Path(__file__).parents[1] / "runners" / "images" / "image_volume"
    # its own tag, removed after: an identical image built by another test keeps its tags
    tag = f"spared-bench-test/{context.name}-{uuid.uuid4().hex[:8]}:1"
    image, _ = docker_engine.images.build(path=str(context), tag=tag, network_mode="none",
                                          rm=True, forcerm=True,
                                          buildargs={"BASE_IMAGE": BASE_IMAGE})
    bench = published.bench()
    try:
        with pytest.raises(SubmissionRejected, match="found VOLUME /data; remove the VOLUME"):
            register_image(bench, image.id, name="volume", team="lab", client=docker_engine)
    finally:
        docker_engine.images.remove(tag)
    assert archives_left(bench) == []
