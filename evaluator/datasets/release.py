"""Immutable, content-addressed dataset releases.

A release is a folder ``<releases_dir>/<release_id>/``::

    manifest.json                          ids, datasets, sha256 and size of every file
    public/<dataset>/<track>/train.h5ad    public spots (X = the track's expression, + mask)
    public/<dataset>/train_patches.npy     their patches, (n, H, W, 3) uint8, shared by tracks
    public/<dataset>/test_inputs.h5ad      hidden spots: obs, spatial; no expression
    public/<dataset>/test_patches.npy      their patches
    hidden/<dataset>/truth.h5ad            hidden spots' expression and mask (never mounted)

Only ``public/<dataset>`` is ever shown to a submission. The release id is the sha256 of the
sources' digests (and the format version), so building the same content twice yields the same
release, recognized instead of rebuilt. A source's digest hashes its pixels once, as the two
patch files they are split into, and every other byte of it (``source_digest``). A release is
written to a temporary folder and renamed into place; it is never modified afterwards, and
loading it verifies every file's hash.

One physical copy of the pixels: every file is a hard link to a content-addressed blob
(``<releases_dir>/.blobs/<sha256>``), the patches are stored once per dataset (not once per
track, and not inside the ``.h5ad`` files), and a dataset whose source and derivation did not
change is not rebuilt: its files of an earlier release are linked again
(``<releases_dir>/.datasets/<key>.json``), so a new release costs only the bytes of what
changed. Patches move in chunks of ``PATCH_CHUNK_BYTES``: building a release of SpaRED's
largest dataset (6.6 GB of patches) holds one chunk of them in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from evaluator.completion import SpackleConfig
from evaluator.core.arrays import dense
from evaluator.core.devices import nvidia_gpu_visible
from evaluator.core.errors import BenchError, ReleaseIntegrityError, ReleaseNotFound
from evaluator.core.fsio import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    link_or_copy,
    sha256_file,
)
from evaluator.core.refs import describe_releases, match_release
from evaluator.core.vocabulary import Track
from evaluator.datasets.patches import (
    PATCH_CHUNK_BYTES,
    NpyWriter,
    PatchRows,
    iter_row_chunks,
    open_processed,
)
from evaluator.datasets.registry import get_dataset
from evaluator.datasets.schema import (
    COMPLETED_LAYER,
    MASK_LAYER,
    OBS_COLUMNS,
    SPATIAL_KEY,
    check_dataset,
    patch_shape_of,
)
from evaluator.datasets.splits import hidden_mask, hidden_split_name
from evaluator.datasets.store import write_h5ad

if TYPE_CHECKING:
    import anndata as ad
    import h5py
    import pandas as pd

    from evaluator.core.settings import Settings

RELEASE_FORMAT_VERSION = "3"
SOURCE_DIGEST_SCHEME = "spared-bench source digest 1"
COMPLETED_CACHE_DIR = "completed"
TRAIN_PATCHES = "train_patches.npy"
TEST_PATCHES = "test_patches.npy"
BLOBS_DIR = ".blobs"
DATASET_RECORDS_DIR = ".datasets"
VERIFIED_DIR = ".verified"
MANIFEST_NAME = "manifest.json"
# Only these var columns travel into releases: others (per-gene statistics computed over all
# spots, hidden ones included) could carry information about the hidden split.
PUBLIC_VAR_COLUMNS: tuple[str, ...] = ("gene_ids", "gene_length")
TRACK_LAYERS: dict[Track, str] = {"raw": "c_d_log1p", "spackle": COMPLETED_LAYER}


class FileEntry(BaseModel):
    """Integrity record of one release file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str
    bytes: int


class ReleaseDataset(BaseModel):
    """What a release holds of one dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    tracks: list[Track]
    hidden_split: Literal["test", "val"]
    n_public_spots: int
    n_hidden_spots: int
    genes: list[str]
    patch_shape: tuple[int, int, int]
    # Format 2 recorded the source file's sha256 under "source_sha256"; format 3 its digest
    # (``source_digest``), which hashes the pixels once while they are split.
    source_digest: str = Field(validation_alias=AliasChoices("source_digest", "source_sha256"))


class ReleaseManifest(BaseModel):
    """The manifest of a release: identity, contents and the hash of every file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    release_id: str
    format_version: str
    label: str | None
    created_utc: datetime
    datasets: dict[str, ReleaseDataset]
    files: dict[str, FileEntry]
    # True for an author's copy (``data pull``): ``files`` and ``datasets`` list what was
    # pulled, the training data ``check`` needs; the hidden split's files are not there.
    partial: bool = False


class Release:
    """A loaded, verified release: paths of its files and its manifest."""

    def __init__(self, root: Path, manifest: ReleaseManifest) -> None:
        self.root = root
        self.manifest = manifest

    @property
    def release_id(self) -> str:
        """The content hash identifying the release."""
        return self.manifest.release_id

    @property
    def datasets(self) -> list[str]:
        """Dataset names in the release, sorted."""
        return sorted(self.manifest.datasets)

    def dataset(self, name: str) -> ReleaseDataset:
        """Return the release's record of a dataset (raises ``BenchError`` when absent)."""
        info = get_dataset(name)
        if info.name not in self.manifest.datasets:
            raise BenchError(
                f"dataset {info.name!r} is not in release {self.release_id[:12]}: expected one "
                f"of {', '.join(self.datasets)}"
            )
        return self.manifest.datasets[info.name]

    def public_dir(self, name: str) -> Path:
        """The only folder of a dataset that a submission may see."""
        return self.root / "public" / self.dataset(name).name

    def train_path(self, name: str, track: Track) -> Path:
        """Public training file of a dataset for a track."""
        record = self.dataset(name)
        if track not in record.tracks:
            raise BenchError(
                f"track {track!r} is not available for {record.name} in release "
                f"{self.release_id[:12]}: expected one of {record.tracks}"
            )
        return self.public_dir(name) / track / "train.h5ad"

    def test_inputs_path(self, name: str) -> Path:
        """Hidden split's inputs (no expression) of a dataset."""
        return self._held(self.public_dir(name) / "test_inputs.h5ad")

    def train_patches_path(self, name: str) -> Path:
        """Patches of the public spots, (n, H, W, 3) uint8 in train.h5ad's row order."""
        return self.public_dir(name) / TRAIN_PATCHES

    def test_patches_path(self, name: str) -> Path:
        """Patches of the hidden spots, in test_inputs.h5ad's row order."""
        return self._held(self.public_dir(name) / TEST_PATCHES)

    def truth_path(self, name: str) -> Path:
        """Hidden truth of a dataset; never mounted into a container."""
        return self._held(self.root / "hidden" / self.dataset(name).name / "truth.h5ad")

    def _held(self, path: Path) -> Path:
        """``path``, or a ``BenchError`` when this copy (``data pull``) does not hold it."""
        if self.manifest.partial and path.relative_to(self.root).as_posix() not in \
                self.manifest.files:
            raise BenchError(
                f"{path.relative_to(self.root)}: expected a file of release "
                f"{self.release_id[:12]}, found none in this pulled copy: `data pull` fetches "
                "the training data that `check` uses; evaluation on the hidden split runs on "
                "the service")
        return path

    def verify(self) -> None:
        """Check every file against the manifest; raise ``ReleaseIntegrityError`` on a mismatch.

        Also refuses files that are not in the manifest (something was added afterwards).
        """
        for rel, entry in self.manifest.files.items():
            path = self.root / rel
            if not path.is_file():
                raise ReleaseIntegrityError(path, f"a file of {entry.bytes} bytes", "no file")
            info = path.stat()
            if info.st_size != entry.bytes:
                raise ReleaseIntegrityError(path, f"{entry.bytes} bytes", f"{info.st_size} bytes")
            if hashed_before(self.root.parent, path, entry.sha256):
                continue
            digest = sha256_file(path)
            if digest != entry.sha256:
                raise ReleaseIntegrityError(path, f"sha256 {entry.sha256}", f"sha256 {digest}")
            remember_hash(self.root.parent, path, entry.sha256)
        self._check_unlisted()

    def remember_verified(self, rels: Iterable[str]) -> None:
        """Record files as verified in their current state (just written and hashed)."""
        for rel in rels:
            remember_hash(self.root.parent, self.root / rel, self.manifest.files[rel].sha256)

    def _check_unlisted(self) -> None:
        listed = set(self.manifest.files) | {MANIFEST_NAME}
        for path in self.root.rglob("*"):
            if path.is_file() or path.is_symlink():
                rel = path.relative_to(self.root).as_posix()
                if rel not in listed:
                    raise ReleaseIntegrityError(path, "no file outside the manifest",
                                                "an unlisted file")


def _inode_signature(info: os.stat_result) -> str:
    return f"{info.st_dev} {info.st_ino} {info.st_size} {info.st_mtime_ns} {info.st_ctime_ns}"


def hashed_before(releases_dir: Path, path: Path, sha256: str) -> bool:
    """True when ``path`` was hashed to ``sha256`` and its inode has not changed since.

    Any write or chmod moves ctime: 46 GB of patches are not re-read on every load.
    """
    try:
        seen = (releases_dir / VERIFIED_DIR / sha256).read_text()
        return seen == _inode_signature(path.stat())
    except OSError:
        return False


def remember_hash(releases_dir: Path, path: Path, sha256: str) -> None:
    """Record that ``path``, as it is now, has the content ``sha256`` (``hashed_before``)."""
    with contextlib.suppress(OSError):  # a read-only store still verifies, slowly
        seen = releases_dir / VERIFIED_DIR / sha256
        seen.parent.mkdir(exist_ok=True)
        atomic_write_bytes(seen, _inode_signature(path.stat()).encode())


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def release_id_for(sources: Mapping[str, str], derivation: str = "") -> str:
    """Return the release id of sources ``{dataset name: source digest}`` and their derivation.

    ``derivation`` fingerprints how absent layers are computed (``completion_fingerprint``).
    """
    canonical = json.dumps(
        {"format_version": RELEASE_FORMAT_VERSION, "datasets": dict(sorted(sources.items())),
         "derivation": derivation},
        sort_keys=True,
    )
    return _sha256_text(canonical)


def _public_var(adata: ad.AnnData) -> pd.DataFrame:
    columns = [c for c in PUBLIC_VAR_COLUMNS if c in adata.var.columns]
    return adata.var[columns].copy()


def _subset_obs(adata: ad.AnnData, rows: np.ndarray) -> object:
    obs = adata.obs.loc[rows, list(OBS_COLUMNS)].copy()
    for column in ("split", "slide_id", "patient"):
        obs[column] = obs[column].astype(str).astype("category")
    obs["array_row"] = obs["array_row"].astype(np.int64)
    obs["array_col"] = obs["array_col"].astype(np.int64)
    return obs




def _track_expression(adata: ad.AnnData, track: Track) -> np.ndarray:
    values = dense(adata.layers[TRACK_LAYERS[track]]).astype(np.float32)
    if track == "raw":
        # docs/ARCHITECTURE.md "Tracks": the raw track hides the completion, missing entries
        # become 0.
        values = np.where(dense(adata.layers[MASK_LAYER]), values, np.float32(0))
    return values


def _split_patches(path: Path, patches: h5py.Dataset, hidden: np.ndarray,
                   shape: tuple[int, int, int], folder: Path | None,
                   known_digest: str | None = None) -> tuple[str, dict[str, str]]:
    """Split the public and hidden spots' patches into two .npy files, in one chunked pass.

    Returns (the source's digest, ``{file name: sha256}``); with ``folder=None`` nothing is
    written and the files' hashes are computed alone. Patches stored plainly (contiguous,
    uncompressed: how anndata writes them) are read once with plain reads, and the pixels are
    hashed once, as the two files they become: the digest combines those hashes with the
    hash of every byte outside the patch array (``_digest``). Otherwise the file is hashed
    whole (unless ``known_digest``) and the patches read through HDF5.
    """
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    writers = {TRAIN_PATCHES: NpyWriter(folder / TRAIN_PATCHES if folder else None,
                                        int((~hidden).sum()), shape),
               TEST_PATCHES: NpyWriter(folder / TEST_PATCHES if folder else None,
                                       int(hidden.sum()), shape)}
    public_writer, hidden_writer = writers[TRAIN_PATCHES], writers[TEST_PATCHES]

    def route(first: int, block: np.ndarray) -> None:
        part = hidden[first:first + len(block)]
        if part.all() or not part.any():  # one slide's block: no copy
            (hidden_writer if part.all() else public_writer).write(block)
        else:
            public_writer.write(block[~part])
            hidden_writer.write(block[part])

    try:
        offset = patches.id.get_offset() if patches.chunks is None else None
        if offset is not None and patches.compression is None:
            outside = _route_contiguous(path, offset, patches.shape, route)
            hashes = {name: writer.close() for name, writer in writers.items()}
            digest = _digest({"layout": "contiguous", "patch_offset": int(offset),
                              "patch_array_shape": [int(n) for n in patches.shape],
                              "outside_patches_sha256": outside, "split_sha256": hashes})
        else:
            digest = known_digest or _digest({"layout": "file", "sha256": sha256_file(path)})
            rows = PatchRows([(path, patches.name, len(hidden))], int(np.prod(shape)))
            for first, block in rows.iter_blocks():
                route(first, block)
            hashes = {name: writer.close() for name, writer in writers.items()}
        return digest, hashes
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise


def _digest(parts: Mapping[str, object]) -> str:
    """Return a source's digest: the sha256 of its named parts (canonical JSON).

    Equal bytes give equal digests; any changed byte changes one part: outside the patch
    array, the hash of those bytes; inside it, the hash of one of the two files the rows
    are split into, in row order, by the split recorded outside it.
    """
    return _sha256_text(json.dumps({"scheme": SOURCE_DIGEST_SCHEME, **parts}, sort_keys=True))


def _route_contiguous(path: Path, offset: int, shape: tuple[int, ...],
                      route: Callable[[int, np.ndarray], None]) -> str:
    """Read ``path`` once: pass the rows at ``offset`` to ``route``; hash every other byte."""
    digest = hashlib.sha256()
    n_rows, row_bytes = int(shape[0]), int(np.prod(shape[1:]))
    end = offset + n_rows * row_bytes
    with open(path, "rb", buffering=0) as fh:
        while fh.tell() < offset:  # the HDF5 structures and whatever precedes the patches
            digest.update(fh.read(min(PATCH_CHUNK_BYTES, offset - fh.tell())))
        for block in iter_row_chunks(n_rows, row_bytes):
            data = fh.read((block.stop - block.start) * row_bytes)
            if len(data) != (block.stop - block.start) * row_bytes:
                raise ReleaseIntegrityError(path, f"patch bytes up to offset {end}",
                                            f"the file ending at {fh.tell()}")
            route(block.start, np.frombuffer(data, dtype=np.uint8).reshape(-1, row_bytes))
        while chunk := fh.read(PATCH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def source_digest(path: Path | str) -> str:
    """Return the digest that identifies a processed dataset file in releases.

    Reads the file once without writing anything (the build computes the same digest while it
    writes the release's patch files). Raises ``InputFileError`` when it is not an .h5ad,
    ``BenchError`` when it has no patches.
    """
    path = Path(path)
    with open_processed(path) as (adata, patches):
        shape = patch_shape_of(adata, patches)
        if shape is None or patches is None:
            raise BenchError(f"{path}: expected uns['patch_shape'] or square RGB patches, found "
                             "neither")
        hidden = hidden_mask(adata.obs["split"].astype(str).to_numpy())
        return _split_patches(path, patches, hidden, shape, None)[0]


def _write_tables(
    adata: ad.AnnData, shape: tuple[int, int, int], name: str, out_root: Path,
    tracks: list[Track]
) -> None:
    """Write the public and hidden .h5ad files of one dataset under ``out_root`` (no pixels)."""
    # why here: anndata takes ~0.5 s to import; the web app loads this module without writing a
    # release
    import anndata as ad

    hidden = hidden_mask(adata.obs["split"].astype(str).to_numpy())
    public = ~hidden
    uns = {"patch_shape": list(shape), "dataset": name}
    var = _public_var(adata)
    spatial = np.asarray(adata.obsm[SPATIAL_KEY], dtype=np.float64)
    mask = dense(adata.layers[MASK_LAYER]).astype(bool)
    index = adata.obs_names.to_numpy()

    for track in tracks:
        expression = _track_expression(adata, track)
        train = ad.AnnData(
            X=expression[public], obs=_subset_obs(adata, index[public]), var=var.copy(),
            layers={"mask": mask[public]}, obsm={SPATIAL_KEY: spatial[public]},
            uns={**uns, "track": track},
        )
        write_h5ad(train, out_root / "public" / name / track / "train.h5ad")

    test_inputs = ad.AnnData(
        obs=_subset_obs(adata, index[hidden]), var=var.copy(),
        obsm={SPATIAL_KEY: spatial[hidden]}, uns=dict(uns),
    )
    write_h5ad(test_inputs, out_root / "public" / name / "test_inputs.h5ad")

    truth_layers = {"c_d_log1p": dense(adata.layers["c_d_log1p"])[hidden].astype(np.float32),
                    "mask": mask[hidden]}
    if "spackle" in tracks:
        truth_layers["c_t_log1p"] = dense(adata.layers[COMPLETED_LAYER])[hidden].astype(
            np.float32)
    truth = ad.AnnData(
        X=truth_layers["c_d_log1p"].copy(), obs=_subset_obs(adata, index[hidden]), var=var.copy(),
        layers=truth_layers, obsm={SPATIAL_KEY: spatial[hidden]}, uns=dict(uns),
    )
    write_h5ad(truth, out_root / "hidden" / name / "truth.h5ad")


def prepare_processed(adata: ad.AnnData, name: str, source_digest: str, cache_dir: Path,
                      completion: SpackleConfig, progress: bool = False) -> str:
    """Complete a processed dataset in place before it is split into a release.

    Adds what a release needs and the file lacks (the median- and SpaCKLE-completed layers,
    SpaCKLE trained with ``completion`` and cached under ``cache_dir``); returns a one-line
    account of what was done, for progress reports. The layers added are kept in
    ``cache_dir/completed`` by (dataset, source digest, completion): a rebuild of the same
    source reads them back without loading torch.
    """
    if COMPLETED_LAYER in adata.layers and "d_log1p" in adata.layers:
        return "has both tracks already"
    start = time.perf_counter()
    key = _sha256_text(json.dumps({"dataset": name, "source": source_digest,
                                   "completion": completion_fingerprint(completion)},
                                  sort_keys=True))
    cached = cache_dir / COMPLETED_CACHE_DIR / f"{key}.npz"
    layers = _read_completed(cached, adata.shape)
    if layers is not None:
        missing = {k: v for k, v in layers.items() if k not in adata.layers}
        for layer, values in missing.items():
            adata.layers[layer] = values
        return (f"added {', '.join(missing)} (the completion of an earlier build, "
                f"{time.perf_counter() - start:.1f}s)")

    # why here: completion needs torch (the science extra); reading releases (workers, the
    # web app) does not
    from evaluator.completion.layers import add_completion_layers

    report = add_completion_layers(adata, cache_dir=cache_dir, data_hash=source_digest,
                                   config=completion, progress=progress, source=name)
    with contextlib.suppress(OSError):  # a read-only cache only costs the next build time
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, allow_pickle=False,
                     **{layer: np.asarray(adata.layers[layer]) for layer in report.added})
    how = ("reused a cached SpaCKLE model" if report.cache_hit
           else "trained SpaCKLE" if report.cache_hit is False else "completed")
    return f"added {', '.join(report.added)} ({how}, {time.perf_counter() - start:.1f}s)"


def _read_completed(path: Path, shape: tuple[int, int]) -> dict[str, np.ndarray] | None:
    """Return the layers cached at ``path`` if all are float arrays of ``shape``, else None."""
    try:
        with np.load(path, allow_pickle=False) as data:
            layers = {layer: data[layer] for layer in data.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # absent or unreadable: computed again (and rewritten)
    if not layers or any(v.shape != shape or v.dtype.kind != "f" for v in layers.values()):
        return None
    return layers


def completion_config(max_steps: int | None = None) -> SpackleConfig:
    """Return the SpaCKLE configuration of a release build: its defaults, or ``max_steps``.

    The edges (CLI, worker) pass ``Settings.spackle_max_steps`` (``SPARED_BENCH_SPACKLE_STEPS``).
    """
    return SpackleConfig(max_steps=max_steps) if max_steps else SpackleConfig()


def completion_from_settings(settings: Settings) -> SpackleConfig:
    """Return the SpaCKLE configuration the settings name (read at the edges: CLI, worker).

    ``SPARED_BENCH_SPACKLE_STEPS`` wins; else the paper's budget (``SpackleConfig.paper()``)
    where ``SPARED_BENCH_SPACKLE_BUDGET`` says ``paper``, or ``auto`` and an NVIDIA GPU is
    visible; else the CPU budget. Releases built on a GPU therefore differ (in their id) from
    releases built on a CPU of the same sources, as their SpaCKLE models do.
    """
    if settings.spackle_max_steps:
        return completion_config(settings.spackle_max_steps)
    if settings.spackle_budget == "paper" or (settings.spackle_budget == "auto"
                                              and nvidia_gpu_visible()):
        return SpackleConfig.paper()
    return completion_config()


def completion_fingerprint(completion: SpackleConfig | None = None) -> str:
    """Return the hash of what derives missing layers (the SpaCKLE configuration).

    Part of the release id: the same sources completed differently are a different release.
    """
    config = completion or completion_config()
    return _sha256_text(json.dumps(config.cache_key_fields(), sort_keys=True))


def _resolve_sources(sources: Iterable[Path | str]) -> dict[str, Path]:
    resolved: dict[str, Path] = {}
    for source in sources:
        path = Path(source)
        info = get_dataset(path.stem)
        if info.name in resolved:
            raise BenchError(f"dataset {info.name} given twice: {resolved[info.name]} and {path}")
        resolved[info.name] = path
    if not resolved:
        raise BenchError("no processed dataset files given: expected at least one <name>.h5ad")
    return resolved


SOURCE_HASHES_DIR = ".sources"


def _source_signature(path: Path) -> str:
    info = path.stat()
    # The format version is part of it: a digest of another format's scheme is not reused.
    return (f"{RELEASE_FORMAT_VERSION}\0{path.resolve()}\0{info.st_dev} {info.st_ino} "
            f"{info.st_size} {info.st_mtime_ns} {info.st_ctime_ns}")


def _known_source_hash(releases_dir: Path, path: Path) -> str | None:
    """The digest of a source file read before and not changed since (same stat), else None."""
    record = releases_dir / SOURCE_HASHES_DIR / _sha256_text(_source_signature(path))
    try:
        text = record.read_text().strip()
    except OSError:
        return None
    return text if len(text) == 64 else None


def _remember_source_hash(releases_dir: Path, path: Path, digest: str) -> None:
    with contextlib.suppress(OSError):
        record = releases_dir / SOURCE_HASHES_DIR / _sha256_text(_source_signature(path))
        record.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(record, digest.encode())


def _prefixed(say: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda message: say(f"{prefix}: {message}")


def _dataset_key(name: str, source_digest: str, derivation: str) -> str:
    """What a dataset's release files depend on: format, dataset, source and derivation."""
    return _sha256_text(json.dumps({"format_version": RELEASE_FORMAT_VERSION, "dataset": name,
                                    "source": source_digest, "derivation": derivation},
                                   sort_keys=True))


def _blob_path(releases_dir: Path, sha256: str) -> Path:
    return releases_dir / BLOBS_DIR / sha256[:2] / sha256


def _store_blobs(releases_dir: Path, root: Path, files: Mapping[str, FileEntry]) -> set[str]:
    """Make each file under ``root`` a hard link of its content-addressed blob (read-only).

    Returns the files that became new blobs (the others are links of blobs stored before).
    """
    stored: set[str] = set()
    for rel, entry in files.items():
        path = root / rel
        os.chmod(path, 0o444)
        blob = _blob_path(releases_dir, entry.sha256)
        blob.parent.mkdir(parents=True, exist_ok=True)
        if blob.is_file():
            path.unlink()
            link_or_copy(blob, path)
        else:
            try:
                os.link(path, blob)
                stored.add(rel)
            except FileExistsError:  # stored concurrently: same bytes by construction
                path.unlink()
                link_or_copy(blob, path)
    return stored


def _link_dataset_record(releases_dir: Path, key: str, root: Path
                         ) -> tuple[ReleaseDataset, dict[str, FileEntry]] | None:
    """Link an earlier release's files of the same dataset build into ``root``, if all exist."""
    record_path = releases_dir / DATASET_RECORDS_DIR / f"{key}.json"
    if not record_path.is_file():
        return None
    try:
        data = json.loads(record_path.read_text())
        record = ReleaseDataset.model_validate(data["record"])
        files = {rel: FileEntry.model_validate(e) for rel, e in data["files"].items()}
    except (ValueError, KeyError, TypeError, ValidationError):
        return None  # unreadable record: rebuild (it is rewritten afterwards)
    blobs = {rel: _blob_path(releases_dir, e.sha256) for rel, e in files.items()}
    if not all(b.is_file() and b.stat().st_size == files[r].bytes for r, b in blobs.items()):
        return None
    for rel, blob in blobs.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(blob, root / rel)
    return record, files


def _build_dataset(path: Path, name: str, known_digest: str | None, root: Path,
                   completion: tuple[Path, SpackleConfig, bool], say: Callable[[str], None]
                   ) -> tuple[ReleaseDataset, dict[str, FileEntry]]:
    """Validate, split and complete one processed file into ``root``; patches in chunks.

    The source's digest is computed in the pass that splits the patches (the record carries
    it); ``known_digest`` spares hashing a file whose patches cannot be read plainly.
    """
    say(f"validating {path.name}")
    with open_processed(path) as (adata, patches):
        check_dataset(adata, str(path), expected_genes=get_dataset(name).genes, patches=patches)
        shape = patch_shape_of(adata, patches)
        if shape is None or patches is None:
            raise BenchError(f"{path}: expected uns['patch_shape'] or square RGB patches, found "
                             "neither")
        splits = adata.obs["split"].astype(str).to_numpy()
        hidden = hidden_mask(splits)
        say(f"splitting the patches of {len(hidden):,} spots (in chunks, hashed once on the "
            "way)")
        digest, patch_hashes = _split_patches(path, patches, hidden, shape,
                                              root / "public" / name, known_digest)
    if COMPLETED_LAYER not in adata.layers:
        say("completing missing values with SpaCKLE")
    say(prepare_processed(adata, name, digest, *completion))
    tracks: list[Track] = ["raw", "spackle"] if COMPLETED_LAYER in adata.layers else ["raw"]
    say(f"writing tracks {', '.join(tracks)}")
    _write_tables(adata, shape, name, root, tracks)
    record = ReleaseDataset(
        name=name, tracks=tracks, hidden_split=hidden_split_name(splits),
        n_public_spots=int((~hidden).sum()), n_hidden_spots=int(hidden.sum()),
        genes=[str(g) for g in adata.var_names], patch_shape=shape,
        source_digest=digest,
    )
    files: dict[str, FileEntry] = {}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if rel.split("/")[1] != name:
            continue
        known = patch_hashes.get(file.name) if rel.endswith(".npy") else None
        files[rel] = FileEntry(sha256=known or sha256_file(file), bytes=file.stat().st_size)
    return record, files


def build_release(
    sources: Iterable[Path | str],
    releases_dir: Path,
    *,
    label: str | None = None,
    cache_dir: Path | None = None,
    completion: SpackleConfig | None = None,
    progress: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> tuple[Release, bool]:
    """Build (or recognize) the release of processed dataset files named ``<dataset>.h5ad``.

    Returns ``(release, created)``; ``created`` is False when a release of the same content
    already existed (it is verified and returned, not rebuilt). Each source is validated
    against the schema first. Sources without the SpaCKLE-completed layer are completed with
    ``completion`` (default: SpaCKLE's own budget; part of the release id), its models cached
    in ``cache_dir`` (default ``<releases_dir>/.cache``); ``progress`` draws training bars.
    Raises ``SchemaError``, ``DatasetNotFound``, ``InputFileError``.
    """
    say = on_progress or (lambda _msg: None)
    resolved = _resolve_sources(sources)
    releases_dir = Path(releases_dir)
    completion = completion or completion_config()
    derivation = completion_fingerprint(completion)
    spackle = (Path(cache_dir) if cache_dir else releases_dir / ".cache", completion, progress)
    # A source hashed before (same inode, size and times) is not read again; the others are
    # hashed while their patches are split, in the same read.
    hashes = {name: _known_source_hash(releases_dir, path) for name, path in resolved.items()}
    if all(hashes.values()):
        release_id = release_id_for(hashes, derivation)  # type: ignore[arg-type]
        if (releases_dir / release_id / MANIFEST_NAME).is_file():
            say(f"release {release_id[:12]} already exists with this content; verifying it")
            return load_release(release_id, releases_dir), False

    records: dict[str, ReleaseDataset] = {}
    files: dict[str, FileEntry] = {}
    written: set[str] = set()
    releases_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build.", suffix=".tmp", dir=releases_dir))
    try:
        for i, (name, path) in enumerate(sorted(resolved.items()), start=1):
            step = f"[{i}/{len(resolved)}] {name}"
            known = hashes[name]
            reused = (_link_dataset_record(releases_dir, _dataset_key(name, known, derivation),
                                           tmp) if known else None)
            if reused is not None:
                records[name], dataset_files = reused
                say(f"{step}: unchanged since an earlier release; its files are linked, not "
                    "rebuilt")
            else:
                records[name], dataset_files = _build_dataset(
                    path, name, known, tmp, spackle, _prefixed(say, step))
                hashes[name] = records[name].source_digest
                _remember_source_hash(releases_dir, path, records[name].source_digest)
                written |= _store_blobs(releases_dir, tmp, dataset_files)
                key = _dataset_key(name, records[name].source_digest, derivation)
                atomic_write_json(releases_dir / DATASET_RECORDS_DIR / f"{key}.json", {
                    "record": records[name].model_dump(mode="json"),
                    "files": {rel: e.model_dump() for rel, e in dataset_files.items()}})
            files.update(dataset_files)
        release_id = release_id_for(hashes, derivation)  # type: ignore[arg-type]
        final = releases_dir / release_id
        files = dict(sorted(files.items()))
        manifest = ReleaseManifest(
            release_id=release_id, format_version=RELEASE_FORMAT_VERSION, label=label,
            created_utc=datetime.now(UTC), datasets=records, files=files,
        )
        atomic_write_json(tmp / MANIFEST_NAME, manifest.model_dump(mode="json"))
        os.chmod(tmp / MANIFEST_NAME, 0o444)
        os.chmod(tmp, 0o755)
        if (final / MANIFEST_NAME).is_file():
            # The same content was released before (or concurrently): that one stands.
            shutil.rmtree(tmp, ignore_errors=True)
            say(f"release {release_id[:12]} already exists with this content; verifying it")
            return load_release(release_id, releases_dir), False
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST_NAME).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return load_release(release_id, releases_dir), False
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    release = Release(final, manifest)
    # The files stored by this build were hashed as they were written: recorded as verified,
    # the first load does not read the pixels again.
    release.remember_verified(written)
    say(f"release {release_id[:12]} written to {final}")
    return release, True


def check_files(manifest: ReleaseManifest, datasets: Iterable[str] | None = None
                ) -> dict[str, FileEntry]:
    """Return the files of ``manifest`` that ``check`` reads: each dataset's public training
    data (``<track>/train.h5ad`` and ``train_patches.npy``), of ``datasets`` or all.

    Nothing of the hidden split is among them; this is what the service lets authors pull.
    """
    wanted = set(datasets) if datasets is not None else None
    kept: dict[str, FileEntry] = {}
    for rel, entry in manifest.files.items():
        parts = rel.split("/")
        if parts[0] != "public" or (wanted is not None and parts[1] not in wanted):
            continue
        if parts[-1] == TRAIN_PATCHES or (len(parts) == 4 and parts[-1] == "train.h5ad"):
            kept[rel] = entry
    return kept


def job_files(manifest: ReleaseManifest, dataset: str, track: str, *, truth: bool = True
              ) -> dict[str, FileEntry]:
    """Return the files of ``manifest`` that one evaluation job of ``dataset`` and ``track``
    reads: the track's ``train.h5ad``, both patch files, ``test_inputs.h5ad`` and, with
    ``truth``, the hidden truth the scorer reads. ``BenchError`` when the release lacks one."""
    wanted = [f"public/{dataset}/{track}/train.h5ad", f"public/{dataset}/{TRAIN_PATCHES}",
              f"public/{dataset}/test_inputs.h5ad", f"public/{dataset}/{TEST_PATCHES}"]
    if truth:
        wanted.append(f"hidden/{dataset}/truth.h5ad")
    missing = [rel for rel in wanted if rel not in manifest.files]
    if missing:
        raise BenchError(f"release {manifest.release_id[:12]}: expected the files of a job of "
                         f"{dataset}/{track}, found {', '.join(missing)} missing")
    return {rel: manifest.files[rel] for rel in wanted}


def partial_manifest(manifest: ReleaseManifest, datasets: Iterable[str] | None = None
                     ) -> ReleaseManifest:
    """Return the manifest of an author's copy: ``check_files`` of ``datasets`` (or all)."""
    files = check_files(manifest, datasets)
    names = {rel.split("/")[1] for rel in files}
    return manifest.model_copy(update={
        "files": files, "partial": True,
        "datasets": {n: r for n, r in manifest.datasets.items() if n in names}})


def _read_manifest(root: Path) -> ReleaseManifest:
    path = root / MANIFEST_NAME
    try:
        return ReleaseManifest.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise ReleaseIntegrityError(path, "a manifest.json", "no file") from exc
    except ValidationError as exc:
        raise ReleaseIntegrityError(path, "a valid release manifest",
                                    f"{exc.error_count()} problem(s): {exc.errors()[0]['msg']}"
                                    ) from exc


def list_releases(releases_dir: Path) -> list[ReleaseManifest]:
    """Return the manifests of all releases in the store, oldest first (not verified)."""
    manifests = []
    if Path(releases_dir).is_dir():
        for root in sorted(Path(releases_dir).iterdir()):
            if root.is_dir() and not root.name.startswith(".") and (root / MANIFEST_NAME).is_file():
                manifests.append(_read_manifest(root))
    return sorted(manifests, key=lambda m: m.created_utc)


def load_release(ref: str, releases_dir: Path, *, verify: bool = True) -> Release:
    """Load a release by id, unique id prefix (≥ 6 characters) or label; verify it by default.

    Raises ``ReleaseNotFound`` (listing what exists) or ``ReleaseIntegrityError``.
    """
    manifests = list_releases(releases_dir)
    matches = match_release(ref, manifests)
    if len(matches) != 1:
        raise ReleaseNotFound(ref, describe_releases(manifests))
    release = Release(Path(releases_dir) / matches[0].release_id, matches[0])
    if release.root.name != release.manifest.release_id:
        raise ReleaseIntegrityError(release.root, f"folder {release.manifest.release_id}",
                                    f"folder {release.root.name}")
    if verify:
        release.verify()
    return release
