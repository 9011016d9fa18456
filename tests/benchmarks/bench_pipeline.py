"""Benchmark the processing pipeline on synthetic raw counts of the ``full`` sizes.

Per dataset (``generate_raw_dataset(name, "full")``: the registry's real spot count, raw genes
of four kinds, 8x8 patches since patches only travel through the pipeline):

- ``process <dataset>``: wall seconds of ``process_raw``, the note splitting it by step;
  reference: generating the raw data in the same process.
- ``peak RSS <dataset>``: the highest resident memory during any step (MB), next to the
  resident memory before the run (the raw data and the libraries loaded).

Over all datasets run: seconds and peak memory per step (``step <name>``). Then the two steps
SpaRED computes per gene and spot, against the same step done the straightforward way on the
same data (the first slide of the largest dataset run, its filtered genes):

- ``median filter``: entries/s of ``adaptive_median_filter`` (vectorized) vs the loop reference
  of the completion tests (``tests.completion.reference.loop_adaptive_median_filter``), on 24
  genes; identical output is checked;
- ``Moran's I``: genes/s of the pipeline's step, with each backend of mode ``exact-hex``
  (squidpy on the hexagonal graph; one sparse product; mode ``spared``, the default, uses the
  sparse product on SpaRED's kNN graph: ``bench_spared``) vs a Python loop over genes of the
  written-out formula (``z @ W @ z / z @ z`` with the row-standardized sparse graph); equal
  values are checked.

``quick``: three small datasets. Full: all 26 (``SPARED_BENCH_PIPELINE_DATASETS=VMB,MMBR``
picks some). SpaCKLE trains ``SPARED_BENCH_SPACKLE_STEPS`` steps (default here 20 in quick,
SpaCKLE's own 100 otherwise).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from evaluator.completion import adaptive_median_filter
from evaluator.core.settings import Settings
from evaluator.core.visium import hex_neighbors
from evaluator.datasets.pipeline import STEP_NAMES, default_config, process_raw, raw_from_anndata
from evaluator.datasets.pipeline import steps as pipeline_steps
from evaluator.datasets.pipeline.runner import _peak_rss_mb, _reset_peak_rss
from evaluator.datasets.registry import get_dataset, load_registry
from evaluator.datasets.release import completion_config
from evaluator.datasets.synthetic_raw import generate_raw_dataset
from tests.benchmarks.harness import BenchRow
from tests.completion.reference import loop_adaptive_median_filter

QUICK_DATASETS = ("villacampa_kidney_organoid", "mirzazadeh_human_colon_p1",
                  "fan_mouse_olfatory_bulb")
LOOP_GENES = 24


def _datasets(quick: bool) -> list[str]:
    if quick:
        return list(QUICK_DATASETS)
    chosen = os.environ.get("SPARED_BENCH_PIPELINE_DATASETS")
    if chosen:
        return [get_dataset(n.strip()).name for n in chosen.split(",") if n.strip()]
    return [d.name for d in load_registry()]


def _moran_loop(values: np.ndarray, adjacency: sp.csr_matrix) -> np.ndarray:
    """Moran's I gene by gene, the formula written out (row-standardized weights)."""
    graph = sp.csr_matrix(adjacency, dtype=np.float64)
    degree = np.asarray(graph.sum(axis=1)).ravel()
    weights = sp.diags(np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
                       ) @ graph
    s0 = weights.sum()
    n = values.shape[0]
    out = np.empty(values.shape[1])
    for g in range(values.shape[1]):
        column = values[:, g].astype(np.float64)
        z = column - column.mean()
        out[g] = n / s0 * (z @ (weights @ z)) / (z @ z) if np.any(z) else np.nan
    return out


def _slide_inputs(raw, report_genes: int):
    """First slide of a raw dataset after the pipeline's filters: log1p and d_log1p blocks."""
    config = default_config(raw.source)
    counts = raw.counts
    keep = pipeline_steps.inside(pipeline_steps.spot_totals(counts), config.cell_min_counts,
                                 config.cell_max_counts)
    counts = counts[np.flatnonzero(keep)]
    obs = raw.obs.iloc[np.flatnonzero(keep)]
    slides = obs["slide_id"].astype(str).to_numpy()
    first = slides == slides[0]
    codes = np.unique(slides, return_inverse=True)[1]
    exp_frac, glob = pipeline_steps.expression_fractions(counts, codes)
    genes = np.flatnonzero(pipeline_steps.inside(pipeline_steps.gene_totals(counts), 10, 1e6))
    rule = pipeline_steps.real_data_rule(exp_frac[genes], glob[genes], 0.7)
    genes = genes[rule][:report_genes]
    lengths = raw.var["gene_length"].to_numpy(np.float64)
    block = counts[np.flatnonzero(first)]
    scale = pipeline_steps.tpm_scale(counts[np.flatnonzero(first)][:, genes], lengths[genes])
    log1p = pipeline_steps.log2_1p(pipeline_steps.tpm(block[:, genes], lengths[genes], scale))
    rows = obs["array_row"].to_numpy()[first]
    cols = obs["array_col"].to_numpy()[first]
    return log1p, rows, cols


def _comparison_rows(raw) -> list[BenchRow]:
    log1p, rows, cols = _slide_inputs(raw, 10_000)
    slide = np.zeros(rows.size, dtype=int)
    mask = log1p != 0
    n_spots, n_genes = log1p.shape
    rows_out: list[BenchRow] = []

    start = time.perf_counter()
    fast = adaptive_median_filter(log1p, mask, rows, cols, slide)
    fast_s = time.perf_counter() - start
    sub = slice(0, min(LOOP_GENES, n_genes))
    start = time.perf_counter()
    loop = loop_adaptive_median_filter(log1p[:, sub], mask[:, sub], rows, cols, slide)
    loop_s = time.perf_counter() - start
    same = np.array_equal(loop, fast[:, sub])
    fast_rate = n_spots * n_genes / fast_s
    loop_rate = n_spots * (sub.stop - sub.start) / loop_s
    rows_out.append(BenchRow(
        "pipeline", f"median filter ({raw.source}, 1 slide, {n_spots} spots x {n_genes} genes)",
        fast_rate, "entries/s", loop_rate, f"loop reference on {sub.stop} genes",
        f"identical output: {same}"))

    adjacency = hex_neighbors(rows, cols)
    pipeline_steps.morans_i(fast[:, :2], adjacency)  # numba compiles on the first call
    start = time.perf_counter()
    written = _moran_loop(fast, adjacency)
    loop_s = time.perf_counter() - start
    for backend, score in (("squidpy", pipeline_steps.morans_i),
                           ("numpy", pipeline_steps.morans_i_numpy)):
        start = time.perf_counter()
        ours = score(fast, adjacency)
        ours_s = time.perf_counter() - start
        both = np.isfinite(ours) & np.isfinite(written)
        error = float(np.max(np.abs(ours[both] - written[both]))) if both.any() else np.nan
        rows_out.append(BenchRow(
            "pipeline", f"Moran's I {backend} ({raw.source}, 1 slide, {n_spots} spots x "
            f"{n_genes} genes)", n_genes / ours_s, "genes/s", n_genes / loop_s,
            "per-gene loop of the formula", f"max |difference| {error:.1e}"))
    return rows_out


def run(quick: bool = False) -> list[BenchRow]:
    """Run the benchmark; ``quick`` processes three small datasets."""
    os.environ.setdefault("SPARED_BENCH_SPACKLE_STEPS", "20" if quick else "100")
    steps_used = os.environ["SPARED_BENCH_SPACKLE_STEPS"]
    rows: list[BenchRow] = []
    per_step_s = dict.fromkeys(STEP_NAMES, 0.0)
    per_step_mb = dict.fromkeys(STEP_NAMES, 0.0)
    largest = None
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        for name in _datasets(quick):
            gc.collect()
            start = time.perf_counter()
            adata = generate_raw_dataset(name, "full", seed=0, patch_size=8)
            generate_s = time.perf_counter() - start
            raw = raw_from_anndata(adata, name)
            del adata
            gc.collect()
            _reset_peak_rss()
            baseline_mb = _peak_rss_mb()
            start = time.perf_counter()
            processed, report = process_raw(
                raw, default_config(name), cache_dir=Path(tmp) / "cache", progress=True,
                completion=completion_config(Settings.from_env().spackle_max_steps))
            total_s = time.perf_counter() - start
            split = ", ".join(f"{s.name} {s.seconds:.1f}" for s in report.steps
                              if s.seconds >= 0.05)
            peak = max(s.peak_rss_mb for s in report.steps)
            rows.append(BenchRow(
                "pipeline", f"process {name} ({raw.n_spots:,} raw spots x {raw.n_genes:,} "
                f"genes)", total_s, "s", generate_s, "generating the raw data",
                f"{report.spots:,} spots kept; s by step: {split}"))
            rows.append(BenchRow(
                "pipeline", f"peak RSS {name}", peak, "MB", baseline_mb, "RSS before the run",
                f"filter_genes kept {report.step('filter_genes').genes_out} genes"))
            for record in report.steps:
                per_step_s[record.name] += record.seconds
                per_step_mb[record.name] = max(per_step_mb[record.name], record.peak_rss_mb)
            print(f"   {name}: {total_s:.1f}s, peak {peak:.0f} MB", file=sys.stderr, flush=True)
            if largest is None or raw.n_spots > largest.n_spots:
                largest = raw
            else:
                del raw
            del processed
    total = sum(per_step_s.values())
    for name in STEP_NAMES:
        rows.append(BenchRow("pipeline", f"step {name}", per_step_s[name], "s", total,
                             "all steps", f"peak RSS {per_step_mb[name]:.0f} MB"
                             + (f"; SpaCKLE {steps_used} steps" if name == "spackle" else "")))
    if largest is not None:
        rows.extend(_comparison_rows(largest))
    return rows
