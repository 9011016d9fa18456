"""Visium Space Ranger outputs as raw input: one output folder per slide, listed in a sources file.

A Space Ranger output folder holds (names as Space Ranger writes them)::

    filtered_feature_bc_matrix.h5          10x HDF5: matrix/{barcodes,data,indices,indptr,shape,
                                           features/{id,name,feature_type}}, CSC genes x barcodes
    spatial/tissue_positions.csv           Space Ranger >= 2.0 (header row), or
    spatial/tissue_positions_list.csv      older versions (no header): barcode, in_tissue,
                                           array_row, array_col, pxl_row_in_fullres,
                                           pxl_col_in_fullres
    spatial/scalefactors_json.json         tissue_hires_scalef, spot_diameter_fullres, ...
    spatial/tissue_hires_image.png

A dataset is several slides, and Space Ranger knows nothing of patients, splits or gene lengths,
so a sources file (JSON, ``SourcesFile``) names them::

    {"gene_lengths": "gene_lengths.tsv", "patch_size_px": 224,
     "slides": [{"path": "A1", "slide_id": "A1", "patient": "P1", "split": "train"}, ...]}

Paths are relative to the sources file. ``gene_lengths`` is a TSV/CSV with a gene column
(Ensembl id, version suffix ignored, or symbol) and a length column (``length``,
``gene_length`` or ``merged`` as SpaRED's gtftools output). Patches are cut from the hires image
around each spot: a square of ``patch_scale`` spot diameters (``spot_diameter_fullres`` times
``tissue_hires_scalef`` hires pixels), padded with white at the image border and resized to
``patch_size_px``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm import tqdm

from evaluator.datasets.patches import PATCH_CHUNK_BYTES, NpyWriter, PatchRows, iter_row_chunks
from evaluator.datasets.pipeline.errors import RawInputError
from evaluator.datasets.pipeline.raw import RawData, _as_csr_counts, _check_obs

MATRIX_NAME = "filtered_feature_bc_matrix.h5"
POSITIONS_NAMES = ("tissue_positions.csv", "tissue_positions_list.csv")
SCALEFACTORS_NAME = "scalefactors_json.json"
HIRES_NAME = "tissue_hires_image.png"
_POSITION_COLUMNS = ("barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres",
                     "pxl_col_in_fullres")
_LENGTH_COLUMNS = ("length", "gene_length", "merged")


class SlideSource(BaseModel):
    """One slide of a dataset: its Space Ranger folder and what Space Ranger does not know."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="Space Ranger output folder, relative to the sources file")
    slide_id: str = Field(min_length=1)
    patient: str = Field(min_length=1)
    split: Literal["train", "val", "test"]


class SourcesFile(BaseModel):
    """A dataset's raw sources: its slides and a gene-length table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    gene_lengths: str = Field(description="TSV/CSV of gene id or symbol and length")
    patch_size_px: int = Field(224, ge=4, le=1024, description="side of the stored patches")
    patch_scale: float = Field(1.0, gt=0, le=10, description="patch side in spot diameters")
    slides: list[SlideSource] = Field(min_length=1)


def load_sources(path: Path) -> SourcesFile:
    """Parse and validate a sources file; raise ``RawInputError`` naming the field."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RawInputError(path, f"expected a JSON sources file, found a syntax error ({exc})"
                            ) from exc
    try:
        return SourcesFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "(file)"
        raise RawInputError(path, f"{where}: expected a valid value ({error['msg']}), found "
                            f"{error.get('input')!r}") from exc


def _positions_file(folder: Path) -> Path | None:
    for name in POSITIONS_NAMES:
        if (folder / "spatial" / name).is_file():
            return folder / "spatial" / name
    return None


def _slide_files(folder: Path) -> dict[str, Path]:
    """Return the files of a Space Ranger folder; raise listing every one that is missing."""
    missing = []
    matrix = folder / MATRIX_NAME
    if not matrix.is_file():
        missing.append(MATRIX_NAME)
    positions = _positions_file(folder)
    if positions is None:
        missing.append("spatial/tissue_positions.csv (or spatial/tissue_positions_list.csv)")
    scalefactors = folder / "spatial" / SCALEFACTORS_NAME
    if not scalefactors.is_file():
        missing.append(f"spatial/{SCALEFACTORS_NAME}")
    hires = folder / "spatial" / HIRES_NAME
    if not hires.is_file():
        missing.append(f"spatial/{HIRES_NAME}")
    if missing or positions is None:  # (a missing positions file is listed in missing)
        found = "no such folder" if not folder.is_dir() else f"no {', '.join(missing)}"
        raise RawInputError(folder, f"expected a Space Ranger output folder with {MATRIX_NAME},"
                            f" spatial/tissue_positions.csv, spatial/{SCALEFACTORS_NAME} and "
                            f"spatial/{HIRES_NAME}, found {found}")
    return {"matrix": matrix, "positions": positions, "scalefactors": scalefactors,
            "hires": hires}


def source_files(sources_path: Path) -> list[Path]:
    """Return every file a sources file reads, in a fixed order (for content hashes)."""
    sources = load_sources(sources_path)
    root = sources_path.parent
    files = [sources_path, _resolve(root, sources.gene_lengths, "gene_lengths")]
    for slide in sources.slides:
        files.extend(_slide_files(root / slide.path).values())
    return files


def _resolve(root: Path, relative: str, field: str) -> Path:
    path = (root / relative).resolve()
    if not path.exists():
        raise RawInputError(root / relative, f"{field}: expected a file, found nothing")
    return path


def _decode(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values],
                    dtype=object)


def read_10x_h5(path: Path) -> tuple[sp.csr_matrix, np.ndarray, pd.DataFrame]:
    """Read a 10x feature-barcode HDF5 (v3): return (barcodes x genes CSR, barcodes, var).

    Only ``Gene Expression`` features are kept. ``var`` has ``gene_ids`` and ``gene_symbols``,
    indexed by the symbol made unique (``-1``, ``-2`` suffixes, as scanpy does).
    """
    try:
        with h5py.File(path, "r") as h5:
            if "matrix" not in h5:
                raise RawInputError(path, "expected a 10x HDF5 file with a 'matrix' group "
                                    f"(Space Ranger >= 3), found groups {sorted(h5.keys())}")
            group = h5["matrix"]
            needed = ("barcodes", "data", "indices", "indptr", "shape", "features")
            absent = [k for k in needed if k not in group]
            if absent:
                raise RawInputError(path, f"matrix: expected datasets {list(needed)}, found "
                                    f"no {absent}")
            n_features, n_barcodes = (int(v) for v in group["shape"][()])
            # CSC genes x barcodes is CSR barcodes x genes with the same three arrays.
            matrix = sp.csr_matrix((group["data"][()], group["indices"][()],
                                    group["indptr"][()]), shape=(n_barcodes, n_features))
            barcodes = _decode(group["barcodes"][()])
            features = group["features"]
            ids = _decode(features["id"][()])
            names = _decode(features["name"][()]) if "name" in features else ids
            kinds = (_decode(features["feature_type"][()]) if "feature_type" in features
                     else np.full(ids.shape, "Gene Expression", dtype=object))
    except OSError as exc:
        raise RawInputError(path, f"expected a 10x HDF5 file, found something unreadable ({exc})"
                            ) from exc
    keep = kinds == "Gene Expression"
    symbols = pd.Index(names[keep].astype(str))
    unique = symbols.to_series().groupby(symbols).cumcount()
    index = [s if n == 0 else f"{s}-{n}" for s, n in zip(symbols, unique, strict=True)]
    var = pd.DataFrame({"gene_ids": ids[keep].astype(str), "gene_symbols": symbols.to_numpy()},
                       index=pd.Index(index, name=None))
    return matrix[:, np.flatnonzero(keep)].tocsr(), barcodes, var


def read_positions(path: Path) -> pd.DataFrame:
    """Read tissue positions (with or without the Space Ranger 2 header), indexed by barcode."""
    with open(path) as fh:
        first = fh.readline()
    header = first.split(",")[0].strip() == "barcode"
    frame = pd.read_csv(path, header=0 if header else None)
    if not header:
        if frame.shape[1] != len(_POSITION_COLUMNS):
            raise RawInputError(path, f"expected {len(_POSITION_COLUMNS)} columns "
                                f"{list(_POSITION_COLUMNS)}, found {frame.shape[1]}")
        frame.columns = list(_POSITION_COLUMNS)
    absent = [c for c in _POSITION_COLUMNS if c not in frame.columns]
    if absent:
        raise RawInputError(path, f"expected columns {list(_POSITION_COLUMNS)}, found no "
                            f"{absent}")
    return frame.set_index("barcode")


def read_scalefactors(path: Path) -> dict[str, float]:
    """Read ``scalefactors_json.json``; it must give the hires scale and the spot diameter."""
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RawInputError(path, f"expected JSON, found a syntax error ({exc})") from exc
    for key in ("tissue_hires_scalef", "spot_diameter_fullres"):
        value = values.get(key) if isinstance(values, dict) else None
        if not isinstance(value, int | float) or value <= 0:
            raise RawInputError(path, f"{key}: expected a positive number, found {value!r}")
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float)}


def read_image(path: Path) -> np.ndarray:
    """Read an image as uint8 RGB (H x W x 3); grey, RGBA and 16-bit images are converted."""
    # why here: Pillow is the science extra, needed only to read a Space Ranger image
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode in ("I;16", "I;16B", "I"):
                array = np.asarray(image, dtype=np.float64)
                scale = 255.0 / max(float(array.max()), 1.0)
                return np.repeat((array * scale).astype(np.uint8)[..., None], 3, axis=2)
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise RawInputError(path, f"expected a PNG image, found something unreadable ({exc})"
                            ) from exc


def iter_cut_patches(image: np.ndarray, centers_xy: np.ndarray, window_px: float,
                     patch_size_px: int, budget_bytes: int = PATCH_CHUNK_BYTES
                     ) -> Iterator[np.ndarray]:
    """Yield flattened uint8 patches (rows of S*S*3, HWC) cut around ``centers_xy`` (x, y).

    Each patch is the ``window_px``-wide square centred on the spot (in ``image`` pixels),
    white outside the image, resized to ``patch_size_px`` with bilinear interpolation. Rows
    come in chunks within ``budget_bytes``, so a slide's patches are never all in memory.
    """
    # why here: Pillow is the science extra (see read_image)
    from PIL import Image

    side = max(1, round(window_px))
    half = side // 2
    pad = side + 1
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), constant_values=255)
    row_bytes = patch_size_px * patch_size_px * 3
    for block in iter_row_chunks(centers_xy.shape[0], row_bytes, budget_bytes):
        out = np.empty((block.stop - block.start, row_bytes), dtype=np.uint8)
        for i, (x, y) in enumerate(centers_xy[block]):
            left = int(np.clip(round(x) - half, -pad, image.shape[1])) + pad
            top = int(np.clip(round(y) - half, -pad, image.shape[0])) + pad
            crop = padded[top:top + side, left:left + side]
            if side != patch_size_px:
                crop = np.asarray(Image.fromarray(crop).resize(
                    (patch_size_px, patch_size_px), Image.Resampling.BILINEAR))
            out[i] = crop.reshape(-1)
        yield out


def cut_patches(image: np.ndarray, centers_xy: np.ndarray, window_px: float,
                patch_size_px: int) -> np.ndarray:
    """Return every patch of ``iter_cut_patches`` as one (spots, S*S*3) array (small data)."""
    blocks = list(iter_cut_patches(image, centers_xy, window_px, patch_size_px))
    return (np.concatenate(blocks) if blocks
            else np.empty((0, patch_size_px * patch_size_px * 3), dtype=np.uint8))


def read_gene_lengths(path: Path) -> pd.Series:
    """Read a gene-length table: a gene column (first) and a length column, by name."""
    sep = "," if path.suffix == ".csv" else "\t"
    frame = pd.read_csv(path, sep=sep)
    column = next((c for c in _LENGTH_COLUMNS if c in frame.columns), None)
    if column is None or frame.shape[1] < 2:
        raise RawInputError(path, f"expected a gene column and a length column named one of "
                            f"{list(_LENGTH_COLUMNS)}, found columns {list(frame.columns)}")
    genes = frame.iloc[:, 0].astype(str).str.split(".").str[0]
    lengths = pd.to_numeric(frame[column], errors="coerce")
    return pd.Series(lengths.to_numpy(), index=genes.to_numpy()).groupby(level=0).first()


def read_slide(folder: Path, slide: SlideSource, *, patch_size_px: int, patch_scale: float,
               patches_to: Path | None = None
               ) -> tuple[sp.csr_matrix, pd.DataFrame, pd.DataFrame, np.ndarray,
                          np.ndarray | PatchRows]:
    """Read one Space Ranger slide: (counts, obs, var, full-resolution xy, patches).

    With ``patches_to``, the patches are written there (an ``.npy``, chunk by chunk) and
    returned as ``PatchRows``; without it, in memory.
    """
    files = _slide_files(folder)
    counts, barcodes, var = read_10x_h5(files["matrix"])
    positions = read_positions(files["positions"])
    missing = pd.Index(barcodes).difference(positions.index)
    if len(missing):
        raise RawInputError(files["positions"], f"expected a position for every barcode of "
                            f"{MATRIX_NAME}, found none for {len(missing)} (e.g. {missing[0]})")
    spots = positions.loc[barcodes]
    in_tissue = spots["in_tissue"].to_numpy() == 1
    counts = counts[np.flatnonzero(in_tissue)]
    spots = spots[in_tissue]
    scale = read_scalefactors(files["scalefactors"])
    image = read_image(files["hires"])
    xy_full = spots[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(dtype=np.float64)
    hires = scale["tissue_hires_scalef"]
    window = patch_scale * scale["spot_diameter_fullres"] * hires
    patches: np.ndarray | PatchRows
    if patches_to is None:
        patches = cut_patches(image, xy_full * hires, window, patch_size_px)
    else:
        writer = NpyWriter(patches_to, len(xy_full), (patch_size_px * patch_size_px * 3,))
        try:
            for block in iter_cut_patches(image, xy_full * hires, window, patch_size_px):
                writer.write(block)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        patches = PatchRows([(patches_to, None, len(xy_full))], writer.row_bytes)
    obs = pd.DataFrame({
        "slide_id": slide.slide_id, "patient": slide.patient, "split": slide.split,
        "array_row": spots["array_row"].to_numpy(np.int64),
        "array_col": spots["array_col"].to_numpy(np.int64),
        "barcode": spots.index.to_numpy().astype(str),
    }, index=[f"{slide.slide_id}_{b}" for b in spots.index])
    return counts, obs, var, xy_full, patches


def read_sources(path: Path, *, progress: bool = False, work_dir: Path | None = None
                 ) -> RawData:
    """Read every slide of a sources file into one ``RawData`` (genes shared by all slides).

    With ``work_dir``, each slide's patches go to ``<work_dir>/<i>.patches.npy`` and stay there
    (``PatchRows``): memory does not grow with the slides' pixels.

    Raises ``RawInputError`` naming the file and what is missing or inconsistent.
    """
    sources = load_sources(path)
    root = path.parent
    ids = [s.slide_id for s in sources.slides]
    if len(set(ids)) != len(ids):
        raise RawInputError(path, f"slides: expected distinct slide_id values, found {ids}")
    lengths = read_gene_lengths(_resolve(root, sources.gene_lengths, "gene_lengths"))
    parts = list(_iter_slides(root, sources, progress, work_dir))
    shared = parts[0][2]["gene_ids"]
    for part in parts[1:]:
        shared = shared[shared.isin(part[2]["gene_ids"])]
    if shared.empty:
        raise RawInputError(path, "slides: expected genes shared by every slide, found none")
    blocks, obs_parts = [], []
    for counts, obs, var, _, _ in parts:
        position = pd.Series(np.arange(len(var)), index=var["gene_ids"].to_numpy())
        position = position[~position.index.duplicated()]
        blocks.append(counts[:, position.loc[shared.to_numpy()].to_numpy()])
        obs_parts.append(obs)
    var = parts[0][2].loc[shared.index].copy()
    bare_ids = var["gene_ids"].str.split(".").str[0]
    by_id = lengths.reindex(bare_ids.to_numpy()).to_numpy()
    by_symbol = lengths.reindex(var["gene_symbols"].to_numpy()).to_numpy()
    var["gene_length"] = np.where(np.isfinite(by_id), by_id, by_symbol).astype(np.float64)
    if not np.isfinite(var["gene_length"]).any():
        raise RawInputError(_resolve(root, sources.gene_lengths, "gene_lengths"),
                            "expected lengths for the slides' genes (by Ensembl id or symbol), "
                            f"found none of {len(var)} genes (e.g. {var['gene_ids'].iloc[0]})")
    obs = pd.concat(obs_parts)
    problems = _check_obs(obs, str(path))
    if problems:
        raise RawInputError(path, "; ".join(problems))
    counts = _as_csr_counts(sp.vstack(blocks, format="csr"), MATRIX_NAME, str(path))
    side = sources.patch_size_px
    patch_parts = [p[4] for p in parts]
    on_disk = [p for p in patch_parts if isinstance(p, PatchRows)]
    patches: np.ndarray | PatchRows = (
        PatchRows([q for part in on_disk for q in part.parts], side * side * 3)
        if len(on_disk) == len(patch_parts)
        else np.concatenate([np.asarray(p) for p in patch_parts]))
    return RawData(counts=counts, obs=obs, var=var,
                   spatial=np.concatenate([p[3] for p in parts]),
                   patches=patches, patch_shape=(side, side, 3), source=str(path))


def _iter_slides(root: Path, sources: SourcesFile, progress: bool, work_dir: Path | None
                 ) -> Iterator[tuple[sp.csr_matrix, pd.DataFrame, pd.DataFrame, np.ndarray,
                                     np.ndarray | PatchRows]]:
    for i, slide in enumerate(tqdm(sources.slides, desc="reading Space Ranger slides",
                                   unit="slide", disable=not progress)):
        yield read_slide(root / slide.path, slide, patch_size_px=sources.patch_size_px,
                         patch_scale=sources.patch_scale,
                         patches_to=None if work_dir is None else work_dir / f"{i}.patches.npy")
