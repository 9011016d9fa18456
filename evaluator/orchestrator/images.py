"""Submission images: read and check ``docker save`` archives, load them, keep them for workers.

An image is identified by its content id (``sha256:`` of its config), which ``docker save`` /
``docker load`` preserve: the id recorded at intake is the id every worker runs, on whatever
engine, never a tag that could be moved. Archives are kept under ``$SPARED_BENCH_HOME/images``
(``<hex>.tar``), so a worker whose engine lacks the image loads it from there.
"""

from __future__ import annotations

import bz2
import contextlib
import hashlib
import io
import json
import logging
import lzma
import os
import posixpath
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from evaluator.contract.image import image_problem
from evaluator.core.tarstream import TarEntry, TarStream, TarStreamError
from evaluator.orchestrator.errors import SubmissionRejected

log = logging.getLogger(__name__)

REQUIRED_PLATFORM = "linux/amd64"
_CHUNK_BYTES = 1 << 20


MAX_ARCHIVE_MEMBERS = 4096
"""Members of an uploaded archive (a ``docker save`` has about 3 per layer plus 3)."""
MAX_IMAGE_LAYERS = 125
"""Layers of an image (the engine's overlay2 driver refuses more)."""
MAX_HEADER_BYTES = 64 * 2**10
"""An extended tar header (long name, pax) may be this big; larger ones are refused unread."""
MAX_JSON_BYTES = 4 * 2**20
"""manifest.json, the image config, index.json: read into memory, so bounded."""
MAX_IMAGE_FILES = 1_000_000
"""Files (and folders, links) of all layers together: each costs the engine an inode."""
_TAG_FILES = ("manifest.json", "repositories", "index.json")


@dataclass(frozen=True)
class ArchiveFacts:
    """What a ``docker save`` archive says about its (single) image before it is loaded.

    ``unpacked_bytes``: the sizes of every file in every (distinct) layer, decompressed: what
    the image takes on an engine's disk. ``repo_tags``: the tags the archive carried (never
    applied: ``strip_tags`` removes them before any engine sees the archive).
    """

    image_id: str
    platform: str
    repo_tags: tuple[str, ...]
    archive_bytes: int
    unpacked_bytes: int
    layers: int
    problem: str | None = None

    def as_image(self) -> ImageFacts:
        """The facts as an ``ImageFacts`` (before any engine has seen the image)."""
        return ImageFacts(image_id=self.image_id, platform=self.platform,
                          size_bytes=self.unpacked_bytes, repo_tags=(), problem=self.problem)


@dataclass(frozen=True)
class ImageFacts:
    """An image on an engine: id, platform, unpacked size, tags, and why it cannot run as a
    job (``evaluator.contract.image_problem``), if it cannot."""

    image_id: str
    platform: str
    size_bytes: int
    repo_tags: tuple[str, ...]
    problem: str | None = None


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


@dataclass(frozen=True)
class _Member:
    name: str
    entry: TarEntry


def _clean_name(name: str, where: str) -> str:
    """A member's name, normalized; refuse absolute names and ``..``."""
    if name.startswith("/"):
        raise SubmissionRejected(f"{where}: expected relative member names (as `docker save` "
                                 f"writes), found an absolute one: {name[:100]!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SubmissionRejected(f"{where}: expected member names inside the archive, found "
                                 f"one with '..': {name[:100]!r}")
    return "/".join(parts)


def _scan_members(handle: BinaryIO, where: str) -> dict[str, _Member]:
    """Every member of the archive by clean name, with every limit and member kind checked."""
    stream = TarStream(handle, what=where, max_header_bytes=MAX_HEADER_BYTES,
                       max_members=MAX_ARCHIVE_MEMBERS)
    members: dict[str, _Member] = {}
    for entry in stream:
        name = _clean_name(entry.name, where)
        if not name:
            continue
        if name in members:
            raise SubmissionRejected(f"{where}: expected each member once, found {name[:100]!r} "
                                     "twice")
        if entry.type == tarfile.SYMTYPE:
            link = entry.linkname
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
            if link.startswith("/") or target == ".." or target.startswith("../"):
                raise SubmissionRejected(f"{where}: expected links only between members, found "
                                         f"{name[:100]!r} pointing at {link[:100]!r}")
        elif not (entry.is_file or entry.is_dir):
            raise SubmissionRejected(f"{where}: expected plain files, folders and links "
                                     f"between layers, found {name[:100]!r}, {entry.kind}")
        members[name] = _Member(name, entry)
    return members


def _resolve(members: dict[str, _Member], name: str, where: str) -> _Member:
    """The regular member ``name`` names, following links between members (a few hops)."""
    seen = 0
    current = _clean_name(name, where)
    while True:
        member = members.get(current)
        if member is None:
            raise SubmissionRejected(f"{where}: expected {current[:100]} inside (as `docker "
                                     "save` writes), found no such file; is this an image "
                                     "archive?")
        if member.entry.is_file:
            return member
        if member.entry.type != tarfile.SYMTYPE or seen >= 8:
            raise SubmissionRejected(f"{where}: expected {current[:100]} to be a file, found "
                                     f"{member.entry.kind}")
        seen += 1
        current = posixpath.normpath(posixpath.join(posixpath.dirname(current),
                                                    member.entry.linkname))


def _member_bytes(handle: BinaryIO, member: _Member, where: str) -> bytes:
    if member.entry.size > MAX_JSON_BYTES:
        raise SubmissionRejected(f"{where}: expected {member.name[:100]} to be a small file "
                                 f"(at most {MAX_JSON_BYTES} bytes), found "
                                 f"{member.entry.size} bytes")
    handle.seek(member.entry.offset_data)
    return handle.read(member.entry.size)


def _json_member(handle: BinaryIO, member: _Member, where: str) -> Any:
    data = _member_bytes(handle, member, where)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise SubmissionRejected(f"{where}: {member.name[:100]}: expected JSON, found "
                                 f"unreadable content ({str(error)[:200]})") from error


def read_archive(path: Path, *, max_unpacked_bytes: int | None = None) -> ArchiveFacts:
    """Check that ``path`` is a ``docker save`` archive of one image; return its id and facts.

    Checked before anything loads it, without reading any header or layer whole into memory:
    at most ``MAX_ARCHIVE_MEMBERS`` members, extended headers of at most ``MAX_HEADER_BYTES``;
    members are plain files, folders, or links to other members (no absolute names, no
    ``..``, no hard links, devices or fifos); exactly one image with at most
    ``MAX_IMAGE_LAYERS`` layers; each layer (uncompressed, gzip, bzip2 or xz) a tar whose
    files, decompressed, add up to at most ``max_unpacked_bytes`` over all layers. Raises
    ``SubmissionRejected`` naming what is wrong.
    """
    size = path.stat().st_size
    where = "image archive"
    with open(path, "rb") as handle:
        try:
            members = _scan_members(handle, where)
        except TarStreamError as error:
            raise SubmissionRejected(f"{where}: expected an uncompressed tar written by "
                                     f"`docker save` within the limits, found: "
                                     f"{str(error).removeprefix(where + ': ')}") from error
        if not members:
            raise SubmissionRejected(f"{where}: expected an uncompressed tar written by "
                                     "`docker save`, found something else (no members)")
        manifest = _json_member(handle, _resolve(members, "manifest.json", where), where)
        if not isinstance(manifest, list) or len(manifest) != 1:
            found = f"{len(manifest)} images" if isinstance(manifest, list) else "no list"
            raise SubmissionRejected(f"{where}: manifest.json: expected exactly one image, "
                                     f"found {found}; save one image per submission")
        entry = manifest[0]
        config_name = entry.get("Config") if isinstance(entry, dict) else None
        if not isinstance(config_name, str):
            raise SubmissionRejected(f"{where}: manifest.json: expected a Config entry, found none")
        config_member = _resolve(members, config_name, where)
        config_bytes = _member_bytes(handle, config_member, where)
        config = _json_member(handle, config_member, where)
        layers = entry.get("Layers")
        if not isinstance(layers, list) or not layers:
            raise SubmissionRejected(f"{where}: manifest.json: expected a list of Layers, "
                                     "found none")
        if len(layers) > MAX_IMAGE_LAYERS:
            raise SubmissionRejected(f"{where}: expected at most {MAX_IMAGE_LAYERS} layers, "
                                     f"found {len(layers)}; squash the image's layers")
        limit = max_unpacked_bytes if max_unpacked_bytes is not None else 1 << 62
        unpacked = files = 0
        counted: set[str] = set()
        for layer in layers:
            member = _resolve(members, str(layer), where)
            if member.name in counted:
                continue  # the engine stores an identical layer once
            counted.add(member.name)
            layer_bytes, layer_files = _layer_bytes(handle, member, limit - unpacked,
                                                    MAX_IMAGE_FILES - files, where)
            unpacked += layer_bytes
            files += layer_files
    if not isinstance(config, dict):
        raise SubmissionRejected(f"{where}: {config_name[:100]}: expected an image config "
                                 "object, found something else")
    image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    platform = f"{config.get('os', '?')}/{config.get('architecture', '?')}"
    tags = entry.get("RepoTags") or []
    run_config = config.get("config") or {}
    problem = image_problem(run_config) if isinstance(run_config, dict) else \
        "expected the image config's \"config\" to be an object, found something else"
    return ArchiveFacts(image_id=image_id, platform=_short(platform),
                        repo_tags=tuple(_short(t) for t in tags) if isinstance(tags, list)
                        else (), archive_bytes=size, unpacked_bytes=unpacked,
                        layers=len(layers), problem=problem)


def _short(value: object, limit: int = 100) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


class _Region(io.RawIOBase):
    """Read ``size`` bytes of ``handle`` from ``offset`` (one member's data)."""

    def __init__(self, handle: BinaryIO, offset: int, size: int) -> None:
        self._handle = handle
        self._position = offset
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        self._handle.seek(self._position)
        data = self._handle.read(min(len(target), self._left, _CHUNK_BYTES))
        target[:len(data)] = data
        self._position += len(data)
        self._left -= len(data)
        return len(data)


class _Decompressed(io.RawIOBase):
    """A decompressing reader (gzip, bzip2 or xz; concatenated streams as the engine reads
    them) that raises ``_TooBig`` once it has produced more than ``limit`` bytes."""

    def __init__(self, source: io.RawIOBase, factory: Callable[[], Any], limit: int) -> None:
        self._source = source
        self._factory = factory
        self._decompressor = factory()
        self._input = b""
        self._limit = limit
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        want = max(1, min(len(target), _CHUNK_BYTES))
        while True:
            data = self._step(want)
            if data is None:
                return 0
            if data:
                self.produced += len(data)
                if self.produced > self._limit:
                    raise _TooBig
                target[:len(data)] = data
                return len(data)

    def _step(self, want: int) -> bytes | None:
        """Some output (maybe empty), or None at the end of the input."""
        d = self._decompressor
        if d.eof:
            rest = d.unused_data or self._input or self._source.read(_CHUNK_BYTES)
            if not rest:
                return None
            self._decompressor = self._factory()  # the next concatenated stream
            self._input = rest
            return b""
        tail = getattr(d, "unconsumed_tail", None)
        if tail:  # zlib keeps what it did not consume
            return bytes(d.decompress(tail, want))
        if tail is None and not d.needs_input:  # bz2/lzma keep their own buffer
            return bytes(d.decompress(b"", want))
        data = self._input or self._source.read(_CHUNK_BYTES)
        self._input = b""
        if not data:
            raise EOFError("the compressed stream ends early")
        return bytes(d.decompress(data, want))


class _TooBig(Exception):
    """Decompression passed its limit (internal)."""


def _decompressor(magic: bytes, name: str, where: str) -> Callable[[], Any] | None:
    if magic.startswith(b"\x1f\x8b"):
        return lambda: zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if magic.startswith(b"BZh"):
        return bz2.BZ2Decompressor
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        raise SubmissionRejected(f"{where}: layer {name[:100]}: expected an uncompressed, gzip, "
                                 "bzip2 or xz layer, found zstd; save with `docker save`")
    return None


def _layer_bytes(handle: BinaryIO, member: _Member, budget: int, max_files: int,
                 where: str) -> tuple[int, int]:
    """The decompressed size of an archive layer's files and their count (``scan_layer``)."""
    handle.seek(member.entry.offset_data)
    magic = handle.read(6)
    region = _Region(handle, member.entry.offset_data, member.entry.size)
    return scan_layer(region, magic, budget, max_files, where, member.name)


class _Chunks(io.RawIOBase):
    """Read an iterator of byte chunks (an HTTP body) as a raw stream."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(target), len(self._pending))
        target[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def scan_stream_layer(chunks: Iterable[bytes], budget: int, max_files: int, where: str,
                      name: str) -> tuple[int, int]:
    """``scan_layer`` of a layer that arrives as chunks (a registry blob)."""
    iterator = iter(chunks)
    head = b""
    for chunk in iterator:
        head += chunk
        if len(head) >= 6:
            break

    def rest() -> Iterable[bytes]:
        yield head
        yield from iterator

    return scan_layer(_Chunks(rest()), head[:6], budget, max_files, where, name)


def scan_layer(source: io.RawIOBase, magic: bytes, budget: int, max_files: int, where: str,
               name: str) -> tuple[int, int]:
    """The decompressed size of a layer's files and their count; refuse past ``budget`` bytes
    or ``max_files`` entries, paths with ``..`` and sparse files.

    ``magic``: the first bytes of ``source`` (which still starts with them), naming the
    compression. Reads in bounded chunks: a bomb stops at the budget, never on an engine.
    Raises ``SubmissionRejected``.
    """
    decompressor = _decompressor(magic, name, where)
    if decompressor is not None:
        # The tar stream (headers, padding, what follows its end) may be larger than its files.
        source = _Decompressed(source, decompressor, 2 * max(budget, 0) + 64 * 2**20)
    reader = io.BufferedReader(source, buffer_size=_CHUNK_BYTES)
    stream = TarStream(reader, what=f"{where}: layer {name[:100]}",
                       max_header_bytes=MAX_HEADER_BYTES, max_members=max(max_files, 0))
    total = 0
    over = SubmissionRejected(f"{where}: expected the image to unpack to at most "
                              f"{_mb(budget)} more MB, found layer {name[:100]} unpacking to "
                              "more")
    try:
        for entry in stream:
            parts = entry.name.split("/")
            if ".." in parts:
                raise SubmissionRejected(f"{where}: layer {name[:100]}: expected paths inside "
                                         f"the image, found {entry.name[:100]!r}")
            if entry.sparse:
                raise SubmissionRejected(f"{where}: layer {name[:100]}: expected no sparse "
                                         f"files, found {entry.name[:100]!r}")
            if entry.is_file:
                total += entry.size
                if total > budget:
                    raise over
        # What follows the end of the layer's tar is decompressed by the engine too: drain it.
        while reader.read(_CHUNK_BYTES):
            pass
    except _TooBig:
        raise over from None
    except TarStreamError as error:
        raise SubmissionRejected(str(error)) from error  # it names the layer already
    except (zlib.error, OSError, EOFError, lzma.LZMAError) as error:
        raise SubmissionRejected(f"{where}: layer {name[:100]}: expected a tar (uncompressed, "
                                 f"gzip, bzip2 or xz), found: {_short(error, 200)}") from error
    return total, stream.members


def _mb(n: int) -> str:
    return f"{max(n, 0) / 2**20:.3g}"


def strip_tags(path: Path) -> None:
    """Remove every tag from a checked archive in place, so loading it names no image.

    ``docker load`` applies the ``RepoTags`` of manifest.json (and a legacy ``repositories``
    file, and an OCI index's ref-name annotations): a team could re-point any tag on the engine,
    the service's own images included. Each file is rewritten at the same length (JSON padded
    with spaces), so the tar's headers stay as they are. Run after ``read_archive``.
    """
    where = "image archive"
    with open(path, "r+b") as handle:
        members = _scan_members(handle, where)
        for name in _TAG_FILES:
            if name not in members:
                continue
            member = _resolve(members, name, where)
            try:
                data = json.loads(_member_bytes(handle, member, where))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                if name != "repositories":
                    raise SubmissionRejected(f"{where}: {name}: expected JSON, found "
                                             "unreadable content") from None
                data = {}
            if name == "manifest.json" and isinstance(data, list):
                for item in data:
                    if isinstance(item, dict):
                        item["RepoTags"] = None
            elif name == "repositories":
                data = {}
            elif name == "index.json" and isinstance(data, dict):
                for item in data.get("manifests") or []:
                    annotations = item.get("annotations") if isinstance(item, dict) else None
                    if isinstance(annotations, dict):
                        for key in ("io.containerd.image.name",
                                    "org.opencontainers.image.ref.name"):
                            annotations.pop(key, None)
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
            if len(text) > member.entry.size:
                raise SubmissionRejected(f"{where}: {name}: expected tags that can be removed, "
                                         "found a layout this service cannot rewrite")
            handle.seek(member.entry.offset_data)
            handle.write(text + b" " * (member.entry.size - len(text)))


def image_facts(client: Any, ref: str) -> ImageFacts:
    """Inspect an image on the engine; raises ``SubmissionRejected`` when it is not there."""
    # why here: docker is the worker extra; the web app imports this module and never calls an
    # engine
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
                      repo_tags=tuple(image.tags),
                      problem=image_problem(attrs.get("Config") or {}))


def check_runnable(problem: str | None, what: str) -> None:
    """Refuse an image that cannot start as a job (no command, a VOLUME line)."""
    if problem is not None:
        raise SubmissionRejected(f"{what}: {problem}")


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
    # why here: docker is the worker extra (see image_facts)
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


def ensure_image(client: Any, image_id: str, images_dir: Path, *, image_ref: str = "",
                 registry_token: Callable[[str], str] | None = None) -> str | None:
    """Make ``image_id`` present on the engine: pull it from the registry by digest when
    ``image_ref`` is a registry reference (``registry_token(repository)`` signs the pull),
    else load its kept archive.

    Returns None when present, else a message saying why it cannot be (for the job's record).
    """
    if client is None:
        return "no Docker engine answers on this worker"
    # why here: docker is the worker extra (see image_facts)
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
    if "@sha256:" in image_ref:
        return _pull_by_digest(client, image_id, image_ref, registry_token)
    archive = archive_path(images_dir, image_id)
    if not archive.is_file():
        return (f"expected image {image_id[:19]} on this worker's engine or its kept archive, "
                "found neither")
    log.info("loading %s from %s", image_id[:19], archive)
    try:
        strip_tags(archive)  # archives kept before tags were stripped at intake
        with open(archive, "rb") as handle:
            client.images.load(handle)
        client.images.get(image_id)
    except Exception as error:
        return f"loading the kept archive of {image_id[:19]} failed: {str(error)[:300]}"
    return None


def _pull_by_digest(client: Any, image_id: str, image_ref: str,
                    registry_token: Callable[[str], str] | None) -> str | None:
    """Pull ``image_ref`` (``HOST/REPO@sha256:...``, never a tag) and check it is ``image_id``."""
    name, digest = image_ref.rsplit("@", 1)
    repository = name.partition("/")[2]
    if registry_token is None:
        return (f"expected a registry key on this worker to pull {image_ref[:120]}, found none "
                "(set SPARED_BENCH_REGISTRY_KEY)")
    auth = {"registrytoken": registry_token(repository)}
    log.info("pulling %s", image_ref[:120])
    try:
        for event in client.api.pull(name, tag=digest, auth_config=auth, stream=True,
                                     decode=True):
            if isinstance(event, dict) and event.get("error"):
                return f"pulling {image_ref[:120]} failed: {str(event['error'])[:300]}"
        pulled = client.images.get(image_ref)
    except Exception as error:
        return f"pulling {image_ref[:120]} failed: {str(error)[:300]}"
    if pulled.id != image_id:
        return (f"pulling {image_ref[:120]}: expected image {image_id[:19]}, found "
                f"{str(pulled.id)[:19]}")
    return None
