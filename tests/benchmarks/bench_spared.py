"""Benchmark ``data process`` (mode ``spared``) against SpaRED's own library on the same input.

Per dataset size (synthetic raw counts imitating villacampa_lung_organoid and, for 32 genes,
mirzazadeh_human_colon_p1, at a spot cap; ``generate_raw_dataset``) both run filtering and
processing up to the masks and the noisy layers (no SpaCKLE):

- ``time <case>``: wall seconds of ``process_raw`` in this process; reference: SpaRED's
  ``filter_dataset`` + ``process_dataset`` steps in its own venv (``spared==2.2.1``, squidpy
  1.2.3, combat 0.3.3; ``tests/datasets/spared_reference/driver.py``, timed inside the
  driver: imports and file writing excluded), with ``compute_moran``'s 1,000 permutations as
  SpaRED runs them. ``ratio`` < 1 means faster; the target is <= 0.2 (>= 5x faster).
  (SpaRED's time includes numba compiling its Moran kernels once per process, ~10 s.)
- ``peak RSS <case>``: peak resident memory of each process during the processing (MB), the
  raw data included on both sides.

Every case also checks that the outputs are identical to float32 rounding (same spots, genes
in the same order, every layer): the note says ``identical`` or what differs.
``quick``: two small sizes. Full: four sizes up to 6,000 spots (SpaRED's Python loops and
Moran permutations make larger ones take many minutes).
"""

from __future__ import annotations

import gc
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from evaluator.datasets.pipeline import default_config, process_raw, raw_from_anndata
from evaluator.datasets.pipeline.runner import _peak_rss_mb, _reset_peak_rss
from evaluator.datasets.synthetic_raw import generate_raw_dataset
from tests.benchmarks.harness import BenchRow
from tests.datasets.spared_reference.reference import reference_python, spared_process

LAYERS = ("counts", "tpm", "log1p", "d_log1p", "c_log1p", "c_d_log1p", "deltas", "d_deltas",
          "c_deltas", "c_d_deltas", "mask", "noisy_c_d_log1p", "noisy_c_d_deltas")
QUICK_CASES = (("villacampa_lung_organoid", 300), ("mirzazadeh_human_colon_p1", 600))
FULL_CASES = (("villacampa_lung_organoid", 300), ("villacampa_lung_organoid", 1200),
              ("mirzazadeh_human_colon_p1", 1500), ("mirzazadeh_mouse_brain", 6000))


def _difference(ours: object, theirs: object) -> str:
    """Return 'identical' or the first way the two outputs differ."""
    if sorted(ours.obs_names) != sorted(theirs.obs_names):  # type: ignore[attr-defined]
        return "different spots"
    if ours.var_names.tolist() != theirs.var_names.tolist():  # type: ignore[attr-defined]
        return "different genes"
    aligned = theirs[ours.obs_names.tolist()]  # type: ignore[attr-defined,index]
    for layer in LAYERS:
        a = np.asarray(ours.layers[layer], np.float64)  # type: ignore[attr-defined]
        b = np.asarray(aligned.layers[layer], np.float64)
        if not np.allclose(a, b, rtol=2e-6, atol=2e-6):
            return f"{layer} differs (max {np.abs(a - b).max():.3g})"
    return "identical"


def run(quick: bool) -> list[BenchRow]:
    import anndata as ad

    python = reference_python()
    rows: list[BenchRow] = []
    # Warm-up (imports, numba compilation) so the first case is not charged with it; the
    # reference is timed inside its driver, after its imports.
    warm = generate_raw_dataset("mirzazadeh_human_colon_p1", "tiny", seed=1, patch_size=4,
                                max_spots=120)
    with tempfile.TemporaryDirectory() as work_dir:
        process_raw(raw_from_anndata(warm, "warm-up"),
                    default_config("mirzazadeh_human_colon_p1").model_copy(
                        update={"spackle": False}), cache_dir=Path(work_dir))
    for dataset, spots in QUICK_CASES if quick else FULL_CASES:
        raw = generate_raw_dataset(dataset, "tiny", seed=0, patch_size=4, max_spots=spots)
        case = f"{dataset} {raw.n_obs} spots x {raw.n_vars} genes"
        with tempfile.TemporaryDirectory() as work_dir:
            work = Path(work_dir)
            raw.write_h5ad(work / "raw.h5ad")
            config = default_config(dataset).model_copy(update={"spackle": False})
            data = raw_from_anndata(raw, "bench")
            gc.collect()
            _reset_peak_rss()
            started = time.perf_counter()
            ours, _ = process_raw(data, config, cache_dir=work)
            seconds = time.perf_counter() - started
            peak = _peak_rss_mb()
            spared_process(python, work / "raw.h5ad", work / "ref.h5ad", dataset,
                           full_moran=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = ad.read_h5ad(work / "ref.h5ad")
        same = _difference(ours, theirs)
        rows.append(BenchRow("spared", f"time {case}", seconds, "s",
                             float(theirs.uns["seconds"]), "SpaRED's library", same))
        rows.append(BenchRow("spared", f"peak RSS {case}", peak, "MB",
                             float(theirs.uns["peak_rss_mb"]), "SpaRED's library"))
    return rows
