"""Submission images: read and check ``docker save`` archives, load them, keep them for workers.

An image is identified by its content id (``sha256:`` of its config), which ``docker save`` /
``docker load`` preserve: the id recorded at intake is the id every worker runs, on whatever
engine, never a tag that could be moved. Archives are kept under ``$SPARED_BENCH_HOME/images``
(``<hex>.tar``), so a worker whose engine lacks the image loads it from there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from evaluator.orchestrator.errors import SubmissionRejected

log = logging.getLogger(__name__)

REQUIRED_PLATFORM = "linux/amd64"
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ArchiveFacts:
    """What a ``docker save`` archive says about its (single) image before it is loaded.

    ``layers_bytes``: the layers' tar sizes (uncompressed in ``docker save`` output), which is
    about the image's unpacked size.
    """

    image_id: str
    platform: str
    repo_tags: tuple[str, ...]
    archive_bytes: int
    layers_bytes: int

    def as_image(self) -> ImageFacts:
        """The facts as an ``ImageFacts`` (before any engine has seen the image)."""
        return ImageFacts(image_id=self.image_id, platform=self.platform,
                          size_bytes=self.layers_bytes, repo_tags=self.repo_tags)


@dataclass(frozen=True)
class ImageFacts:
    """An image on an engine: id, platform, unpacked size, tags."""

    image_id: str
    platform: str
    size_bytes: int
    repo_tags: tuple[str, ...]


def archive_path(images_dir: Path, image_id: str) -> Path:
    """Where the archive of ``image_id`` is kept."""
    return Path(images_dir) / f"{image_id.removeprefix('sha256:')}.tar"


def receive_stream(chunks: Iterable[bytes] | BinaryIO, folder: Path, max_bytes: int) -> Path:
    """Write an uploaded archive to a temporary file in ``folder``, refusing it past ``max_bytes``.

    Reads in chunks and stops as soon as the limit is passed (the rest is never read).
    Raises ``SubmissionRejected``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".incoming-", suffix=".tar", dir=folder)
    path = Path(name)
    total = 0
    try:
        with os.fdopen(fd, "wb") as out:
            if hasattr(chunks, "read"):
                source: Iterable[bytes] = iter(lambda: chunks.read(_CHUNK_BYTES), b"")
            else:
                source = chunks
            for chunk in source:
                total += len(chunk)
                if total > max_bytes:
                    raise SubmissionRejected(
                        f"image archive: expected at most {max_bytes / 2**20:.3g} MB, found more "
                        f"(stopped reading at {total / 2**20:.3g} MB)")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def read_archive(path: Path) -> ArchiveFacts:
    """Check that ``path`` is a ``docker save`` archive of one image; return its id and platform.

    Raises ``SubmissionRejected`` naming what is wrong (not a tar, no manifest.json, several
    images, a config that is missing or unreadable).
    """
    size = path.stat().st_size
    where = "image archive"
    try:
        archive = tarfile.open(path, mode="r:")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError) as error:
        raise SubmissionRejected(f"{where}: expected an uncompressed tar written by `docker save`,"
                                 f" found something else ({error})") from error
    with archive:
        manifest = _json_member(archive, "manifest.json", where)
        if not isinstance(manifest, list) or len(manifest) != 1:
            found = f"{len(manifest)} images" if isinstance(manifest, list) else "no list"
            raise SubmissionRejected(f"{where}: manifest.json: expected exactly one image, "
                                     f"found {found}; save one image per submission")
        entry = manifest[0]
        config_name = entry.get("Config") if isinstance(entry, dict) else None
        if not isinstance(config_name, str):
            raise SubmissionRejected(f"{where}: manifest.json: expected a Config entry, found none")
        config = _json_member(archive, config_name, where)
        config_bytes = _member_bytes(archive, config_name, where)
        layers = entry.get("Layers")
        if not isinstance(layers, list) or not layers:
            raise SubmissionRejected(f"{where}: manifest.json: expected a list of Layers, "
                                     "found none")
        layers_bytes = 0
        for layer in layers:
            try:
                layers_bytes += archive.getmember(str(layer)).size
            except KeyError as error:
                raise SubmissionRejected(f"{where}: expected layer {layer} inside (listed in "
                                         "manifest.json), found no such file; the archive is "
                                         "incomplete") from error
    if not isinstance(config, dict):
        raise SubmissionRejected(f"{where}: {config_name}: expected an image config object, "
                                 "found something else")
    import hashlib

    image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    platform = f"{config.get('os', '?')}/{config.get('architecture', '?')}"
    tags = tuple(str(t) for t in (entry.get("RepoTags") or []))
    return ArchiveFacts(image_id=image_id, platform=platform, repo_tags=tags,
                        archive_bytes=size, layers_bytes=layers_bytes)


def _member_bytes(archive: tarfile.TarFile, name: str, where: str) -> bytes:
    try:
        member = archive.getmember(name)
    except KeyError as error:
        raise SubmissionRejected(f"{where}: expected {name} inside (as `docker save` writes), "
                                 "found no such file; is this an image archive?") from error
    handle = archive.extractfile(member)
    if handle is None or member.size > 16 * 2**20:
        raise SubmissionRejected(f"{where}: expected {name} to be a small file, found "
                                 f"{'no regular file' if handle is None else 'a large one'}")
    with handle:
        return handle.read()


def _json_member(archive: tarfile.TarFile, name: str, where: str) -> Any:
    data = _member_bytes(archive, name, where)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SubmissionRejected(f"{where}: {name}: expected JSON, found unreadable content "
                                 f"({error})") from error


def image_facts(client: Any, ref: str) -> ImageFacts:
    """Inspect an image on the engine; raises ``SubmissionRejected`` when it is not there."""
    from docker.errors import ImageNotFound, NotFound

    try:
        image = client.images.get(ref)
    except (ImageNotFound, NotFound) as error:
        raise SubmissionRejected(f"image {ref!r}: expected it on this machine's Docker engine, "
                                 "found no such image (build or load it first)") from error
    attrs = image.attrs
    return ImageFacts(image_id=image.id,
                      platform=f"{attrs.get('Os', '?')}/{attrs.get('Architecture', '?')}",
                      size_bytes=int(attrs.get("Size") or 0),
                      repo_tags=tuple(image.tags))


def check_platform(platform: str, what: str) -> None:
    """Refuse anything but linux/amd64 (the workers' platform)."""
    if platform != REQUIRED_PLATFORM:
        raise SubmissionRejected(f"{what}: expected platform {REQUIRED_PLATFORM}, found "
                                 f"{platform}; build with `docker build --platform "
                                 f"{REQUIRED_PLATFORM}`")


def check_size(size_bytes: int, max_bytes: int, what: str) -> None:
    """Refuse an image larger than ``max_bytes`` unpacked."""
    if size_bytes > max_bytes:
        raise SubmissionRejected(f"{what}: expected at most {max_bytes / 2**20:.3g} MB, found "
                                 f"{size_bytes / 2**20:.3g} MB")


def load_archive(client: Any, path: Path, facts: ArchiveFacts) -> ImageFacts:
    """Load a checked archive into the engine and return the loaded image's facts.

    Raises ``SubmissionRejected`` when the engine refuses it (a broken layer, say).
    """
    from docker.errors import APIError, ImageLoadError

    try:
        with open(path, "rb") as handle:
            client.images.load(handle)
    except ImageLoadError as error:
        raise SubmissionRejected(f"image archive: the Docker engine refused to load it: "
                                 f"{error}") from error
    except APIError as error:
        raise SubmissionRejected(f"image archive: the Docker engine refused to load it: "
                                 f"{error.explanation or error}") from error
    return image_facts(client, facts.image_id)


def save_archive(client: Any, image_id: str, images_dir: Path) -> Path:
    """Write ``docker save`` of ``image_id`` to the archive store (atomic); returns the path."""
    target = archive_path(images_dir, image_id)
    if target.is_file():
        return target
    images_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".save-", suffix=".tar", dir=images_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in client.images.get(image_id).save(chunk_size=_CHUNK_BYTES, named=False):
                out.write(chunk)
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
    return target


def ensure_image(client: Any, image_id: str, images_dir: Path) -> str | None:
    """Make ``image_id`` present on the engine, loading its kept archive if needed.

    Returns None when present, else a message saying why it cannot be (for the job's record).
    """
    if client is None:
        return "no Docker engine answers on this worker"
    from docker.errors import APIError, ImageNotFound

    try:
        client.images.get(image_id)
        return None
    except ImageNotFound:
        pass
    except APIError as error:
        return f"the Docker engine failed to inspect {image_id[:19]}: {error}"
    except Exception as error:
        return f"the Docker engine did not answer: {error}"
    archive = archive_path(images_dir, image_id)
    if not archive.is_file():
        return (f"expected image {image_id[:19]} on this worker's engine or its archive at "
                f"{archive}, found neither")
    log.info("loading %s from %s", image_id[:19], archive)
    try:
        with open(archive, "rb") as handle:
            client.images.load(handle)
        client.images.get(image_id)
    except Exception as error:
        return f"loading {archive} failed: {error}"
    return None
