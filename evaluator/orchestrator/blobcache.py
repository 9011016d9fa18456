"""A worker's local cache of release files, fetched from the service by content address.

Layout under the cache folder (``Settings.worker_cache_dir``)::

    blobs/<sha256>           a release file, named by its sha256 (read-only)
    parts/<sha256>.part      a fetch under way (resumed with an HTTP range after a stop)
    used/<sha256>            empty; its mtime is the blob's last use (least recently used
                             goes first; the blob's own inode is not touched, so the hash
                             records of the release folders stay valid)
    releases/<release_id>/   a partial release of the files jobs needed, hard links of blobs
                             (``load_release`` and staging run on it)

``BlobCache.get`` fetches a blob through the one downloader (``client.fetch_verified``:
hashed while it streams, resumable, moved into place atomically); a transfer that stops is
resumed, a file that hashes wrong is dropped and fetched again from its start. The cache is
kept under ``max_bytes`` by evicting the least recently used blobs (and their links in the
release folders) after every fetch; the blobs of running jobs are pinned (shared file locks).
Several threads and processes may share one cache: fetches of one blob, pins and changes of
the release folders hold file locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from evaluator.core.errors import BenchError, ReleaseIntegrityError
from evaluator.core.fsio import atomic_write_json, link_or_copy, sha256_file
from evaluator.core.settings import Settings
from evaluator.datasets.release import (
    MANIFEST_NAME,
    VERIFIED_DIR,
    FileEntry,
    Release,
    ReleaseManifest,
    hashed_before,
    job_files,
    load_release,
    remember_hash,
)
from evaluator.orchestrator.client import (
    _worker_headers,
    blob_url,
    fetch_registry_token,
    fetch_release_manifest,
    fetch_verified,
    fetch_worker_name,
)
from evaluator.orchestrator.errors import ServerUnavailable

log = logging.getLogger(__name__)

FETCH_ATTEMPTS = 3
BLOBS, PARTS, USED, RELEASES = "blobs", "parts", "used", "releases"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created), across threads and processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class BlobCache:
    """Release files by sha256 from ``server`` (a worker token), kept under ``max_bytes``."""

    def __init__(self, root: Path, server: str, token: str, *, max_bytes: int,
                 say: Callable[[str], None] = lambda _line: None) -> None:
        if max_bytes <= 0:
            raise BenchError(f"worker cache size: expected a positive number of bytes, found "
                             f"{max_bytes}")
        self.root = Path(root)
        self.server = server.rstrip("/")
        self.token = token
        self.max_bytes = max_bytes
        self.say = say
        self.fetched_bytes = 0  # bytes that travelled, this process (for the benchmark)

    @classmethod
    def from_settings(cls, settings: Settings, server: str, token: str) -> BlobCache:
        """The cache at ``settings.worker_cache_dir`` of ``SPARED_BENCH_WORKER_CACHE_GB``."""
        return cls(settings.worker_cache_dir, server, token,
                   max_bytes=settings.worker_cache_bytes)

    @property
    def releases_dir(self) -> Path:
        """Where the materialised releases live (``load_release(id, releases_dir)``)."""
        return self.root / RELEASES

    def blob_path(self, sha256: str) -> Path:
        """Where the blob ``sha256`` is kept (whether or not it is here)."""
        return self.root / BLOBS / sha256

    # -- blobs -----------------------------------------------------------------------------------

    def get(self, sha256: str, size: int) -> Path:
        """The blob ``sha256`` of ``size`` bytes, fetched unless here; marked as used now.

        A blob here is trusted while its inode is as it was when hashed (``hashed_before``),
        else hashed again; one that hashes wrong is dropped and fetched again. Raises
        ``ServerUnavailable`` when the server stays away (the partial file is kept and a later
        call resumes it) or ``ReleaseIntegrityError`` when it keeps sending other bytes.
        """
        blob = self.blob_path(sha256)
        with _locked(self.root / PARTS / f"{sha256}.lock"):
            if not self._holds(blob, sha256, size):
                self._fetch(sha256, size, blob)
                remember_hash(self.root, blob, sha256)
        self._touch(sha256)
        return blob

    def _holds(self, blob: Path, sha256: str, size: int) -> bool:
        try:
            if blob.stat().st_size != size:
                blob.unlink()
                return False
        except OSError:
            return False
        if hashed_before(self.root, blob, sha256):
            return True
        if sha256_file(blob) == sha256:
            remember_hash(self.root, blob, sha256)
            return True
        log.warning("blob %s: expected its sha256, found other bytes in the cache; fetching "
                    "it again", sha256[:12])
        blob.unlink()
        return False

    def _fetch(self, sha256: str, size: int, blob: Path) -> None:
        part = self.root / PARTS / f"{sha256}.part"
        error: Exception = ServerUnavailable(f"blob {sha256[:12]}: not fetched")
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            held = _size(part)
            try:
                self.fetched_bytes += fetch_verified(
                    blob_url(self.server, sha256), sha256, size, part, blob,
                    headers=_worker_headers(self.token), say=self.say)
                os.chmod(blob, 0o444)
                return
            except ServerUnavailable as stopped:  # the part is kept: resumed next round
                error = stopped
                self.fetched_bytes += max(0, _size(part) - held)
            except ReleaseIntegrityError as wrong:  # the part is gone: fetched from its start
                error = wrong
            log.warning("blob %s: attempt %d of %d failed: %s", sha256[:12], attempt,
                        FETCH_ATTEMPTS, error)
            time.sleep(min(0.2 * attempt, 1.0))
        raise error

    def _touch(self, sha256: str) -> None:
        used = self.root / USED / sha256
        used.parent.mkdir(parents=True, exist_ok=True)
        used.touch()
        os.utime(used)

    def _last_used(self, sha256: str) -> float:
        try:
            return (self.root / USED / sha256).stat().st_mtime
        except OSError:
            return 0.0

    def usage_bytes(self) -> int:
        """Bytes of the blobs held (the release folders' links add none)."""
        folder = self.root / BLOBS
        if not folder.is_dir():
            return 0
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())

    @contextlib.contextmanager
    def pinned(self, shas: set[str]) -> Iterator[None]:
        """Keep the blobs ``shas`` from eviction while the block runs, by any thread or process
        using this cache folder: a shared ``flock`` on each ``used/<sha256>`` (eviction takes
        an exclusive one without waiting, and passes a blob it cannot lock)."""
        with contextlib.ExitStack() as stack:
            for sha in sorted(shas):
                used = self.root / USED / sha
                used.parent.mkdir(parents=True, exist_ok=True)
                fh = stack.enter_context(open(used, "a+b"))
                fcntl.flock(fh, fcntl.LOCK_SH)
            yield

    def evict(self, keep: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """Remove least recently used blobs until the cache holds at most ``max_bytes``; never
        ``keep`` nor a pinned blob (``pinned``, any process). Their links in the release
        folders go with them (each folder's manifest then lists only what it holds). Returns
        the evicted sha256s."""
        with _locked(self.root / ".lock"):
            folder = self.root / BLOBS
            if not folder.is_dir():
                return []
            sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
            total = sum(sizes.values())
            evicted: list[str] = []
            for sha in sorted(sizes, key=self._last_used):
                if total <= self.max_bytes:
                    break
                if sha in keep or not self._drop_unpinned(sha):
                    continue
                total -= sizes[sha]
                evicted.append(sha)
            if evicted:
                self._unlink_from_releases(set(evicted))
                log.info("worker cache: evicted %d blob(s), %.1f MB held of %.1f MB",
                         len(evicted), total / 1e6, self.max_bytes / 1e6)
            return evicted

    def _drop_unpinned(self, sha: str) -> bool:
        """Remove blob ``sha`` unless a job pins it; True when removed. ``used/<sha>`` stays
        (its inode is what pins lock: a pin taken meanwhile stays valid, and the job fetches
        the blob again)."""
        used = self.root / USED / sha
        used.parent.mkdir(parents=True, exist_ok=True)
        with open(used, "a+b") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            for path in (self.root / BLOBS / sha, self.root / VERIFIED_DIR / sha,
                         self.releases_dir / VERIFIED_DIR / sha):
                path.unlink(missing_ok=True)
            fcntl.flock(fh, fcntl.LOCK_UN)
        return True

    def _unlink_from_releases(self, gone: set[str]) -> None:
        if not self.releases_dir.is_dir():
            return
        for root in self.releases_dir.iterdir():
            manifest = _held_manifest(root)
            if manifest is None:
                continue
            drop = {rel for rel, e in manifest.files.items() if e.sha256 in gone}
            if not drop:
                continue
            for rel in drop:
                (root / rel).unlink(missing_ok=True)
            files = {r: e for r, e in manifest.files.items() if r not in drop}
            atomic_write_json(root / MANIFEST_NAME,
                              _restricted(manifest, files).model_dump(mode="json"))

    # -- releases --------------------------------------------------------------------------------

    def manifest(self, ref: str) -> ReleaseManifest:
        """A published release's whole manifest, from the service."""
        return fetch_release_manifest(self.server, self.token, ref)

    def worker_name(self) -> str:
        """The worker name the service knows this cache's token by."""
        return fetch_worker_name(self.server, self.token)

    def registry_token(self, repository: str) -> str:
        """A pull-only registry token for a submitted image's repository, from the service."""
        return fetch_registry_token(self.server, self.token, repository)

    def materialise(self, manifest: ReleaseManifest, dataset: str, track: str, *,
                    truth: bool = True) -> Release:
        """The files one job of ``dataset``/``track`` needs (``job_files``), fetched into the
        cache and linked into ``releases/<release_id>/`` beside what earlier jobs left there;
        returns that partial release, loaded and verified (hashes recorded as the blobs were
        fetched: nothing is read twice). Call it inside ``pinned`` (``job_release`` does) when
        other jobs of this process may evict meanwhile."""
        wanted = job_files(manifest, dataset, track, truth=truth)
        shas = {e.sha256 for e in wanted.values()}
        with self.pinned(shas):
            blobs = {rel: self.get(e.sha256, e.bytes) for rel, e in wanted.items()}
            self.evict(keep=shas)
            release = self._link(manifest, wanted, blobs)
        return release

    @contextlib.contextmanager
    def job_release(self, manifest: ReleaseManifest, dataset: str, track: str, *,
                    truth: bool = True) -> Iterator[Release]:
        """``materialise`` with the job's blobs pinned until the block ends (staging, the run
        and scoring)."""
        shas = {e.sha256 for e in job_files(manifest, dataset, track, truth=truth).values()}
        with self.pinned(shas):
            yield self.materialise(manifest, dataset, track, truth=truth)

    def _link(self, manifest: ReleaseManifest, wanted: dict[str, FileEntry],
              blobs: dict[str, Path]) -> Release:
        root = self.releases_dir / manifest.release_id
        with _locked(self.root / ".lock"):
            held = _held_manifest(root)
            if held is not None and held.release_id != manifest.release_id:
                held = None
            files = dict(held.files) if held is not None else {}
            for rel, entry in wanted.items():
                target = root / rel
                if files.get(rel) == entry and target.is_file() and \
                        os.path.samefile(target, blobs[rel]):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
                link_or_copy(blobs[rel], target)
                files[rel] = entry
            for rel, entry in wanted.items():
                # hashed while fetched; recorded once the links are made (a link moves ctime)
                remember_hash(self.releases_dir, root / rel, entry.sha256)
                remember_hash(self.root, blobs[rel], entry.sha256)
            atomic_write_json(root / MANIFEST_NAME,
                              _restricted(manifest, files).model_dump(mode="json"))
            return load_release(manifest.release_id, self.releases_dir)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _held_manifest(root: Path) -> ReleaseManifest | None:
    try:
        return ReleaseManifest.model_validate_json((root / MANIFEST_NAME).read_bytes())
    except (OSError, ValueError):
        return None


def _restricted(manifest: ReleaseManifest, files: dict[str, FileEntry]) -> ReleaseManifest:
    """``manifest`` as a partial copy listing ``files``: its datasets those with a file here,
    each with the tracks whose training file is here."""
    datasets = {}
    for name, record in manifest.datasets.items():
        if not any(rel.split("/")[1] == name for rel in files):
            continue
        tracks = [t for t in record.tracks if f"public/{name}/{t}/train.h5ad" in files]
        datasets[name] = record.model_copy(update={"tracks": tracks})
    return manifest.model_copy(update={"files": dict(sorted(files.items())),
                                       "datasets": datasets, "partial": True})
