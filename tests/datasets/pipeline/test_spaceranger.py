"""Space Ranger outputs as raw input: a fake folder per slide written in the 10x HDF5 format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from PIL import Image

from evaluator.datasets.pipeline import RawInputError, input_fingerprint, process_file, read_raw
from evaluator.datasets.pipeline.spaceranger import cut_patches
from evaluator.datasets.schema import check_dataset, read_h5ad

DATASET = "mirzazadeh_human_colon_p1"
HIRES_SCALE = 0.1
SPOT_DIAMETER = 80.0  # full-resolution pixels: 8 hires pixels


def write_10x_h5(path: Path, counts: sp.csr_matrix, barcodes: list[str], ids: list[str],
                 names: list[str], kinds: list[str]) -> None:
    """Write a Space Ranger v3 feature-barcode matrix (CSC genes x barcodes)."""
    csc = sp.csc_matrix(counts.T.astype(np.int32))  # genes x barcodes, columns = barcodes
    with h5py.File(path, "w") as h5:
        group = h5.create_group("matrix")
        group["barcodes"] = np.array(barcodes, dtype="S")
        group["data"] = csc.data
        group["indices"] = csc.indices.astype(np.int64)
        group["indptr"] = csc.indptr.astype(np.int64)
        group["shape"] = np.array(csc.shape, dtype=np.int32)
        features = group.create_group("features")
        features["id"] = np.array(ids, dtype="S")
        features["name"] = np.array(names, dtype="S")
        features["feature_type"] = np.array(kinds, dtype="S")
        features["genome"] = np.array(["GRCh38"] * len(ids), dtype="S")


def gradient_image(height: int, width: int) -> np.ndarray:
    """An RGB image whose pixels tell where they are: R = x mod 251, G = y mod 241."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x % 251, y % 241, np.full_like(x, 128)], axis=2).astype(np.uint8)


def write_spaceranger(root: Path, raw_vlo_like: Any, *, legacy_slide: str) -> dict[str, Any]:
    """Write one Space Ranger folder per slide of a synthetic raw dataset plus sources.json."""
    obs = raw_vlo_like.obs
    counts = raw_vlo_like.X.tocsr()
    n_genes = raw_vlo_like.n_vars
    ids = [f"ENSG{j:011d}.{j % 3 + 1}" for j in range(n_genes)] + ["ANTIBODY1"]
    names = [str(g) for g in raw_vlo_like.var_names] + ["CD3"]
    kinds = ["Gene Expression"] * n_genes + ["Antibody Capture"]
    slides = []
    for slide in obs["slide_id"].astype(str).unique():
        rows = np.flatnonzero(obs["slide_id"].astype(str).to_numpy() == slide)
        folder = root / slide
        (folder / "spatial").mkdir(parents=True)
        barcodes = [f"AAAC{i:08d}-1" for i in range(rows.size)]
        block = sp.hstack([counts[rows], sp.csr_matrix(np.ones((rows.size, 1)))]).tocsr()
        write_10x_h5(folder / "filtered_feature_bc_matrix.h5", block, barcodes, ids, names,
                     kinds)
        xy = raw_vlo_like.obsm["spatial"][rows]
        positions = pd.DataFrame({
            "barcode": [*barcodes, "TTTT00000000-1"], "in_tissue": [1] * rows.size + [0],
            "array_row": [*obs["array_row"].to_numpy()[rows].tolist(), 0],
            "array_col": [*obs["array_col"].to_numpy()[rows].tolist(), 0],
            "pxl_row_in_fullres": [*np.round(xy[:, 1]).astype(int).tolist(), 5],
            "pxl_col_in_fullres": [*np.round(xy[:, 0]).astype(int).tolist(), 5],
        })
        if slide == legacy_slide:
            positions.to_csv(folder / "spatial" / "tissue_positions_list.csv", header=False,
                             index=False)
        else:
            positions.to_csv(folder / "spatial" / "tissue_positions.csv", index=False)
        (folder / "spatial" / "scalefactors_json.json").write_text(json.dumps({
            "tissue_hires_scalef": HIRES_SCALE, "tissue_lowres_scalef": 0.03,
            "spot_diameter_fullres": SPOT_DIAMETER, "fiducial_diameter_fullres": 120.0}))
        height = int(xy[:, 1].max() * HIRES_SCALE) + 20
        width = int(xy[:, 0].max() * HIRES_SCALE) + 20
        Image.fromarray(gradient_image(height, width)).save(
            folder / "spatial" / "tissue_hires_image.png")
        split = obs["split"].astype(str).to_numpy()[rows][0]
        patient = obs["patient"].astype(str).to_numpy()[rows][0]
        slides.append({"path": slide, "slide_id": slide, "patient": patient, "split": split})
    # One structured gene (one the filters keep) has no length: the TPM step drops it.
    no_length = int(np.flatnonzero(raw_vlo_like.var["synthetic_kind"] == "structured")[0])
    known = [j for j in range(n_genes) if j != no_length]
    lengths = pd.DataFrame({"gene": [ids[j].split(".")[0] for j in known],
                            "merged": raw_vlo_like.var["gene_length"].to_numpy()[known]})
    lengths.to_csv(root / "gene_lengths.tsv", sep="\t", index=False)
    sources = {"dataset": DATASET, "gene_lengths": "gene_lengths.tsv",
               "patch_size_px": 8, "slides": slides}
    (root / "sources.json").write_text(json.dumps(sources))
    return sources


@pytest.fixture(scope="module")
def raw_colon() -> Any:
    from evaluator.datasets.synthetic_raw import generate_raw_dataset

    return generate_raw_dataset(DATASET, "tiny", seed=1, patch_size=4, max_spots=160)


@pytest.fixture
def folder(tmp_path: Path, raw_colon: Any) -> Path:
    legacy = raw_colon.obs["slide_id"].astype(str).unique()[1]
    write_spaceranger(tmp_path / "sr", raw_colon, legacy_slide=legacy)
    return tmp_path / "sr"


def test_reads_counts_positions_lengths_and_patches(folder: Path, raw_colon: Any) -> None:
    raw = read_raw(folder / "sources.json")
    # Spots: every in-tissue barcode of both slides; the off-tissue one is not there.
    assert raw.n_spots == raw_colon.n_obs
    assert raw.n_genes == raw_colon.n_vars  # the antibody feature is left out
    np.testing.assert_array_equal(raw.counts.toarray(), raw_colon.X.toarray())
    for column in ("slide_id", "patient", "split", "array_row", "array_col"):
        assert raw.obs[column].astype(str).tolist() == raw_colon.obs[column].astype(str).tolist()
    np.testing.assert_allclose(raw.spatial, np.round(raw_colon.obsm["spatial"]))
    lengths = raw.var["gene_length"].to_numpy()
    expected = raw_colon.var["gene_length"].to_numpy().astype(float)
    expected[np.flatnonzero(raw_colon.var["synthetic_kind"] == "structured")[0]] = np.nan
    np.testing.assert_array_equal(lengths, expected)
    assert raw.var["gene_ids"].iloc[1] == "ENSG00000000001.2"
    # An 8-pixel patch around each spot of the hires image, unscaled: the gradient says where.
    assert raw.patch_shape == (8, 8, 3)
    patch = raw.patches[5].reshape(8, 8, 3)
    x, y = raw.spatial[5] * HIRES_SCALE
    assert patch[4, 4, 0] == (round(x) - 4 + 4) % 251
    assert patch[4, 4, 1] == (round(y) - 4 + 4) % 241


def test_processes_into_a_valid_dataset(folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    # The sources' own gene-length table (SpaRED's would not know these made-up ids).
    config.write_text(json.dumps({"spackle": False, "gene_lengths": "input"}))
    out = tmp_path / "out.h5ad"
    report = process_file(folder, DATASET, out, cache_dir=tmp_path / "cache",
                          config_path=config)
    adata = read_h5ad(out)
    check_dataset(adata, str(out), expected_genes=32)
    assert report.step("tpm").note.startswith("1 genes without a length")
    assert adata.uns["patch_shape"].tolist() == [8, 8, 3]
    assert adata.obs_names[0].startswith(adata.obs["slide_id"].astype(str).iloc[0] + "_AAAC")
    # The patches went through .npy files on disk, chunk by chunk: the same bytes as the ones
    # cut in memory, for the spots kept; the temporary folder is gone.
    in_memory = read_raw(folder / "sources.json")
    kept = in_memory.obs.index.get_indexer(adata.obs_names)
    np.testing.assert_array_equal(adata.obsm["patches_scale_1.0"], in_memory.patches[kept])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_patches_on_disk_read_in_small_blocks(folder: Path, tmp_path: Path) -> None:
    from evaluator.datasets.patches import PatchRows

    in_memory = read_raw(folder / "sources.json")
    on_disk = read_raw(folder / "sources.json", work_dir=tmp_path)
    assert isinstance(on_disk.patches, PatchRows) and len(on_disk.patches.parts) == 2
    rows = np.flatnonzero(np.arange(in_memory.n_spots) % 3 == 1)
    # a budget of one row per block still gives every selected row, in order
    blocks = list(on_disk.patches.iter_selected(rows, budget_bytes=1))
    assert len(blocks) == len(rows)
    np.testing.assert_array_equal(np.concatenate(blocks), in_memory.patches[rows])
    np.testing.assert_array_equal(on_disk.patches[[7, 2, 7]], in_memory.patches[[7, 2, 7]])


def test_missing_files_are_named(folder: Path) -> None:
    slides = json.loads((folder / "sources.json").read_text())["slides"]
    first = folder / slides[0]["path"]
    (first / "spatial" / "tissue_hires_image.png").unlink()
    (first / "spatial" / "scalefactors_json.json").unlink()
    with pytest.raises(RawInputError, match=r"found no spatial/scalefactors_json.json, "
                                            r"spatial/tissue_hires_image.png"):
        read_raw(folder)
    shutil.rmtree(first)
    with pytest.raises(RawInputError, match="found no such folder"):
        read_raw(folder / "sources.json")


def test_sources_file_and_folder_errors(folder: Path) -> None:
    sources = json.loads((folder / "sources.json").read_text())
    del sources["slides"][0]["split"]
    (folder / "bad.json").write_text(json.dumps(sources))
    with pytest.raises(RawInputError, match=r"slides.0.split: expected a valid value"):
        read_raw(folder / "bad.json")
    slide = folder / sources["slides"][0]["path"]
    with pytest.raises(RawInputError, match="a Space Ranger folder is one slide"):
        read_raw(slide)
    (folder / "gene_lengths.tsv").write_text("gene\tsize\nA\t1\n")
    with pytest.raises(RawInputError, match="length column named one of"):
        read_raw(folder)


def test_fingerprint_covers_every_file(folder: Path) -> None:
    before = input_fingerprint(folder)
    assert input_fingerprint(folder / "sources.json") == before
    slides = json.loads((folder / "sources.json").read_text())["slides"]
    image = folder / slides[1]["path"] / "spatial" / "tissue_hires_image.png"
    Image.fromarray(gradient_image(10, 10)).save(image)
    assert input_fingerprint(folder) != before


def test_cut_patches_pads_with_white_and_resizes() -> None:
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    patches = cut_patches(image, np.array([[0.0, 0.0], [15.0, 10.0]]), 6.0, 6)
    corner = patches[0].reshape(6, 6, 3)
    assert (corner[:3, :3] == 255).all() and (corner[3:, 3:] == 0).all()
    assert (patches[1] == 0).all()
    resized = cut_patches(gradient_image(40, 40), np.array([[20.0, 20.0]]), 10.0, 4)
    assert resized.shape == (1, 4 * 4 * 3)
