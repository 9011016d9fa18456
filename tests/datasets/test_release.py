"""Releases: layout, hashes, identity by content, tamper detection, no truth in public files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pytest

from evaluator.cli import main
from evaluator.core.errors import ReleaseIntegrityError, ReleaseNotFound, SchemaError
from evaluator.core.fsio import sha256_file
from evaluator.datasets.release import (
    SOURCE_DIGEST_SCHEME,
    Release,
    list_releases,
    load_release,
    source_digest,
)
from evaluator.datasets.schema import read_h5ad
from evaluator.datasets.splits import hidden_mask
from evaluator.datasets.store import write_h5ad
from tests.conftest import TINY_DATASETS, build_test_release


def test_layout_and_manifest(tiny_release: Release, tiny_processed_dir: Path) -> None:
    manifest = tiny_release.manifest
    assert sorted(manifest.datasets) == sorted(TINY_DATASETS)
    for name in TINY_DATASETS:
        record = manifest.datasets[name]
        assert "raw" in record.tracks
        for track in record.tracks:
            assert tiny_release.train_path(name, track).is_file()
        assert tiny_release.test_inputs_path(name).is_file()
        assert tiny_release.truth_path(name).is_file()
        assert record.source_digest == source_digest(tiny_processed_dir / f"{name}.h5ad")
        source = read_h5ad(tiny_processed_dir / f"{name}.h5ad")
        assert record.n_public_spots + record.n_hidden_spots == source.n_obs
        assert record.genes == source.var_names.tolist()
    files = {p.relative_to(tiny_release.root).as_posix()
             for p in tiny_release.root.rglob("*") if p.is_file()}
    assert files == set(manifest.files) | {"manifest.json"}
    for rel, entry in manifest.files.items():
        assert sha256_file(tiny_release.root / rel) == entry.sha256
    assert tiny_release.root.name == manifest.release_id


def test_hidden_split_is_test_where_defined_else_val(tiny_release: Release) -> None:
    assert tiny_release.dataset("villacampa_lung_organoid").hidden_split == "test"
    assert tiny_release.dataset("mirzazadeh_human_colon_p1").hidden_split == "val"
    for name in TINY_DATASETS:
        hidden = tiny_release.dataset(name).hidden_split
        train = read_h5ad(tiny_release.train_path(name, "raw"))
        test = read_h5ad(tiny_release.test_inputs_path(name))
        truth = read_h5ad(tiny_release.truth_path(name))
        assert hidden not in set(train.obs["split"].astype(str))
        assert set(test.obs["split"].astype(str)) == {hidden}
        assert not set(train.obs_names) & set(test.obs_names)
        assert test.obs_names.tolist() == truth.obs_names.tolist()
        assert not set(train.obs["slide_id"]) & set(test.obs["slide_id"])


def test_public_files_carry_the_track_and_no_truth(tiny_release: Release,
                                                   tiny_processed_dir: Path) -> None:
    name = "villacampa_lung_organoid"
    source = read_h5ad(tiny_processed_dir / f"{name}.h5ad")
    train = read_h5ad(tiny_release.train_path(name, "raw"))
    rows = source.obs_names.get_indexer(train.obs_names)
    expected = np.where(source.layers["mask"], source.layers["c_d_log1p"], 0)[rows]
    np.testing.assert_array_equal(train.X, expected)
    np.testing.assert_array_equal(train.layers["mask"], source.layers["mask"][rows])
    assert set(train.layers) == {"mask"}
    test = read_h5ad(tiny_release.test_inputs_path(name))
    assert test.X is None and len(test.layers) == 0
    assert list(test.obs.columns) == ["split", "slide_id", "patient", "array_row", "array_col"]
    assert set(test.obsm) == {"spatial"}
    assert list(test.uns["patch_shape"]) == [8, 8, 3]
    # Patches live once per dataset, in .npy files in the row order of the h5ad files.
    for adata, patches_path in ((train, tiny_release.train_patches_path(name)),
                                (test, tiny_release.test_patches_path(name))):
        patches = np.load(patches_path)
        rows = source.obs_names.get_indexer(adata.obs_names)
        assert patches.shape == (adata.n_obs, 8, 8, 3) and patches.dtype == np.uint8
        np.testing.assert_array_equal(
            patches.reshape(adata.n_obs, -1), source.obsm["patches_scale_1.0"][rows])


def test_no_truth_bytes_are_reachable_from_the_public_tree(tiny_release: Release) -> None:
    public_bytes = [p.read_bytes() for p in (tiny_release.root / "public").rglob("*")
                    if p.is_file()]
    assert not [p for p in (tiny_release.root / "public").rglob("*") if p.is_symlink()]
    for name in TINY_DATASETS:
        truth = read_h5ad(tiny_release.truth_path(name))
        values = np.ascontiguousarray(truth.layers["c_d_log1p"], dtype=np.float32)
        for row in values[:: max(1, len(values) // 25)]:
            needle = row.tobytes()
            assert not any(needle in blob for blob in public_bytes), name
        # The same search does find public rows, so a miss above means something.
        train = read_h5ad(tiny_release.train_path(name, "raw"))
        needle = np.ascontiguousarray(train.X[0], dtype=np.float32).tobytes()
        assert any(needle in blob for blob in public_bytes)


def test_extra_obs_and_var_columns_stay_out_of_releases(
    tiny_processed_dir: Path, tmp_path: Path
) -> None:
    source = read_h5ad(tiny_processed_dir / "mirzazadeh_human_colon_p1.h5ad")
    source.obs["total_counts"] = source.layers["counts"].sum(axis=1)
    source.var["d_log1p_moran"] = 0.5
    path = write_h5ad(source, tmp_path / "src" / "mirzazadeh_human_colon_p1.h5ad")
    release, created = build_test_release([path], tmp_path / "releases")
    assert created
    for file in (release.train_path("MHCP1", "raw"), release.test_inputs_path("MHCP1")):
        adata = read_h5ad(file)
        assert "total_counts" not in adata.obs.columns
        assert list(adata.var.columns) == ["gene_ids", "gene_length"]


def _digest_by_definition(path: Path) -> tuple[str, dict[str, str]]:
    """The source digest as documented, computed here from the file's bytes alone."""
    import h5py

    data = path.read_bytes()
    with h5py.File(path, "r") as fh:
        patches = fh["obsm/patches_scale_1.0"]
        offset, shape = patches.id.get_offset(), patches.shape
        pixels = patches[()]
    end = offset + shape[0] * shape[1]
    hidden = hidden_mask(ad.read_h5ad(path).obs["split"].astype(str).to_numpy())
    side = int(np.sqrt(shape[1] // 3))

    def npy_sha256(rows: np.ndarray) -> str:
        import hashlib
        import io

        buffer = io.BytesIO()
        np.save(buffer, rows.reshape(-1, side, side, 3))
        return hashlib.sha256(buffer.getvalue()).hexdigest()

    split = {"test_patches.npy": npy_sha256(pixels[hidden]),
             "train_patches.npy": npy_sha256(pixels[~hidden])}
    parts = {"scheme": SOURCE_DIGEST_SCHEME, "layout": "contiguous", "patch_offset": offset,
             "patch_array_shape": list(shape), "split_sha256": split,
             "outside_patches_sha256": sha256_bytes(data[:offset] + data[end:])}
    return sha256_bytes(json.dumps(parts, sort_keys=True).encode()), split


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_source_digest_reads_the_pixels_once_and_sees_every_byte(tiny_processed_dir: Path,
                                                                  tmp_path: Path) -> None:
    source = tiny_processed_dir / "mirzazadeh_human_colon_p1.h5ad"
    steps: list[str] = []
    release, _ = build_test_release([source], tmp_path / "releases", on_progress=steps.append)
    record = release.dataset("mirzazadeh_human_colon_p1")
    expected, split = _digest_by_definition(source)
    assert record.source_digest == expected == source_digest(source)
    # The pixels' hashes are the release's patch files' hashes: hashed once, as written.
    public = "public/mirzazadeh_human_colon_p1/"
    assert {name: release.manifest.files[public + name].sha256 for name in split} == split
    assert any("hashed once on the way" in s for s in steps)
    # Same bytes elsewhere: same digest; one pixel byte changed: another digest.
    copy = tmp_path / "copy" / source.name
    copy.parent.mkdir()
    shutil.copyfile(source, copy)
    assert source_digest(copy) == expected
    import h5py

    with h5py.File(copy, "r") as fh:
        offset = fh["obsm/patches_scale_1.0"].id.get_offset()
    with open(copy, "r+b") as fh:
        fh.seek(offset + 5)
        byte = fh.read(1)[0]
        fh.seek(offset + 5)
        fh.write(bytes([byte ^ 0x01]))
    assert source_digest(copy) != expected


def test_a_fresh_build_needs_no_second_read_to_load(tiny_processed_dir: Path,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import evaluator.datasets.release as release_module

    release, _ = build_test_release([tiny_processed_dir / "mirzazadeh_human_colon_p1.h5ad"],
                                    tmp_path)
    hashed: list[Path] = []
    monkeypatch.setattr(release_module, "sha256_file",
                        lambda path: hashed.append(Path(path)) or sha256_file(path))
    load_release(release.release_id, tmp_path)
    assert hashed == []
    # A file changed afterwards (its inode's ctime moves) is hashed again and refused.
    victim = release.truth_path("mirzazadeh_human_colon_p1")
    os.chmod(victim, 0o644)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(ReleaseIntegrityError):
        load_release(release.release_id, tmp_path)
    assert hashed == [victim]


def test_a_rebuild_reuses_the_completion_without_torch(tiny_processed_dir: Path,
                                                       tmp_path: Path) -> None:
    import subprocess
    import sys

    source = tiny_processed_dir / "mirzazadeh_human_colon_p1.h5ad"
    cache = tmp_path / "cache"
    build_test_release([source], tmp_path / "one", cache_dir=cache)
    script = (
        "import sys\n"
        "from tests.conftest import build_test_release\n"
        f"release, created = build_test_release([{str(source)!r}], {str(tmp_path / 'two')!r},"
        f" cache_dir={str(cache)!r}, on_progress=print)\n"
        "print('created', created, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).parents[2])
    assert "the completion of an earlier build" in result.stdout
    assert result.stdout.strip().endswith("created True False")


def test_source_digest_remembered_by_stat(tiny_processed_dir: Path, tmp_path: Path) -> None:
    source = tiny_processed_dir / "mirzazadeh_human_colon_p1.h5ad"
    steps: list[str] = []
    release, _ = build_test_release([source], tmp_path, on_progress=steps.append)
    # A second build reads nothing: the source's hash is known by its stat, the release found.
    steps.clear()
    again, created = build_test_release([source], tmp_path, on_progress=steps.append)
    assert not created and again.release_id == release.release_id
    assert not any("splitting" in s for s in steps)


def test_same_content_is_the_same_release(tiny_release: Release, tiny_processed_dir: Path) -> None:
    releases_dir = tiny_release.root.parent
    again, created = build_test_release(sorted(tiny_processed_dir.glob("*.h5ad")), releases_dir,
                                   label="another label")
    assert not created
    assert again.release_id == tiny_release.release_id
    assert len(list_releases(releases_dir)) == 1
    assert load_release(tiny_release.release_id[:8], releases_dir).root == tiny_release.root
    assert load_release("tiny", releases_dir).release_id == tiny_release.release_id


def test_different_content_is_a_different_release(tiny_processed_dir: Path,
                                                  tmp_path: Path) -> None:
    one, _ = build_test_release([tiny_processed_dir / "mirzazadeh_human_colon_p1.h5ad"], tmp_path)
    two, _ = build_test_release([tiny_processed_dir / "villacampa_lung_organoid.h5ad"], tmp_path)
    assert one.release_id != two.release_id
    with pytest.raises(ReleaseNotFound, match="expected one of"):
        load_release("deadbeef00", tmp_path)


@pytest.fixture
def release_copy(tiny_release: Release, tmp_path: Path) -> Release:
    target = tmp_path / "releases" / tiny_release.release_id
    shutil.copytree(tiny_release.root, target)
    for path in target.rglob("*"):
        if path.is_file():
            os.chmod(path, 0o644)
    return load_release(tiny_release.release_id, target.parent)


def test_a_modified_file_is_refused(release_copy: Release) -> None:
    victim = release_copy.test_inputs_path("mirzazadeh_human_colon_p1")
    blob = bytearray(victim.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    victim.write_bytes(bytes(blob))
    with pytest.raises(ReleaseIntegrityError) as err:
        load_release(release_copy.release_id, release_copy.root.parent)
    assert "test_inputs.h5ad" in str(err.value) and "expected sha256" in str(err.value)


def test_a_missing_or_added_file_is_refused(release_copy: Release) -> None:
    extra = release_copy.root / "public" / "mirzazadeh_human_colon_p1" / "leak.npy"
    extra.write_bytes(b"x")
    with pytest.raises(ReleaseIntegrityError, match="unlisted file"):
        release_copy.verify()
    extra.unlink()
    release_copy.truth_path("mirzazadeh_human_colon_p1").unlink()
    with pytest.raises(ReleaseIntegrityError, match="no file"):
        release_copy.verify()


def test_a_corrupt_manifest_is_refused(release_copy: Release) -> None:
    manifest_path = release_copy.root / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["files"] = "nothing"
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(ReleaseIntegrityError, match="a valid release manifest"):
        load_release(release_copy.release_id, release_copy.root.parent)


def test_a_failed_build_leaves_nothing_behind(tiny_processed_dir: Path, tmp_path: Path) -> None:
    broken = read_h5ad(tiny_processed_dir / "villacampa_lung_organoid.h5ad")
    del broken.obsm["spatial"]
    bad = write_h5ad(broken, tmp_path / "src" / "villacampa_lung_organoid.h5ad")
    good = tiny_processed_dir / "mirzazadeh_human_colon_p1.h5ad"
    releases = tmp_path / "releases"
    with pytest.raises(SchemaError, match="obsm\\['spatial'\\]"):
        build_test_release([good, bad], releases)
    # No release and no temporary folder; what stays is the good dataset's complete,
    # content-addressed files (reused by the next build), each named by its own hash, and the
    # hash of its source, and the SpaCKLE model that completed it.
    assert sorted(p.name for p in releases.iterdir()) == [".blobs", ".cache", ".datasets",
                                                          ".sources"]
    blobs = [p for p in (releases / ".blobs").rglob("*") if p.is_file()]
    assert blobs and all(sha256_file(p) == p.name for p in blobs)


def test_release_files_are_read_only(tiny_release: Release) -> None:
    for rel in tiny_release.manifest.files:
        assert (tiny_release.root / rel).stat().st_mode & 0o222 == 0


def test_cli_release_show_and_list(tiny_processed_dir: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(tmp_path))
    assert main(["data", "release", str(tiny_processed_dir / "mirzazadeh_human_colon_p1.h5ad"),
                 "--label", "v1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("built release ")
    assert main(["data", "show", "v1"]) == 0
    assert "(verified)" in capsys.readouterr().out
    assert main(["data", "releases"]) == 0
    assert " v1 " in capsys.readouterr().out
    assert main(["data", "show", "v2"]) == 2
    assert "release 'v2' not found" in capsys.readouterr().err


def test_cli_release_without_data_says_what_to_do(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("SPARED_BENCH_HOME", str(tmp_path))
    assert main(["data", "release"]) == 1
    assert "spared-bench data synth" in capsys.readouterr().err


def test_test_inputs_load_without_expression(tiny_release: Release) -> None:
    adata = ad.read_h5ad(tiny_release.test_inputs_path("mirzazadeh_human_prostate_cancer"))
    assert adata.n_vars == 128 and adata.X is None
