"""Run SpaRED's processing on raw counts, step by step, in SpaRED's order.

1. ``filter_spots``: total counts strictly inside ``(cell_min_counts, cell_max_counts)``;
2. ``filter_genes``: total counts inside ``(gene_min_counts, gene_max_counts)``, the
   expression-fraction thresholds and the ``real_data_percentage`` rule;
3. ``drop_empty_spots``: spots left with no counts in the kept genes;
4. ``tpm``: counts / gene length, each spot to 1e6 (genes without a length are dropped);
5. ``log1p``: log2(TPM + 1);
6. ``median_filter``: SpaRED's adaptive median filter (``d_log1p``);
7. ``moran``: Moran's I of ``d_log1p`` per gene per slide, averaged over slides;
8. ``top_genes``: the registry's 128 or 32 genes of highest Moran's I, highest first;
9. ``combat``: ComBat on the configured key (``c_log1p``, ``c_d_log1p``);
10. ``deltas``: each layer minus its training mean (``deltas``, ``d_deltas``, ``c_deltas``,
    ``c_d_deltas``; the means in ``var['<layer>_avg_exp']``);
11. ``mask``: ``tpm != 0``;
12. ``spackle``: SpaCKLE completion of ``c_d_log1p`` (``c_t_log1p``, ``c_t_deltas``);
then SpaRED's ``noisy_*`` layers (``add_noisy_layers``).

``config.mode`` (``pipeline.config``) picks the neighbourhoods of steps 6-7 and the ComBat of
step 9: ``spared`` reproduces SpaRED's library (squidpy 1.2.3's directed 6-nearest-neighbour
graph on pixel coordinates, scanpy's Moran formula, pyComBat, pandas' tie order in step 2);
``exact-hex`` uses the exact hexagonal rings and scanpy's ComBat.

Steps 4-8 run over blocks of genes so memory stays bounded (``chunk_mb``) whatever the number
of genes surviving the filters: each block's ``d_log1p`` is scored and only the best
``top_moran_genes`` columns are kept. Every step is recorded (``StepRecord``) with the spots and
genes before and after it, the missing-data fraction (zero counts) before and after it, its
wall time and the process's peak resident memory during it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict
from tqdm import tqdm

from evaluator.completion import SpackleConfig, adaptive_median_filter
from evaluator.core.errors import SchemaError
from evaluator.core.fsio import atomic_path
from evaluator.core.visium import hex_neighbors
from evaluator.datasets.patches import (
    PatchRows,
    check_processed_file,
    write_h5ad_with_patches,
)
from evaluator.datasets.pipeline import steps
from evaluator.datasets.pipeline.config import PIPELINE_VERSION, PipelineConfig, load_config
from evaluator.datasets.pipeline.errors import PipelineError
from evaluator.datasets.pipeline.inputs import input_fingerprint, read_raw
from evaluator.datasets.pipeline.raw import RawData
from evaluator.datasets.registry import get_dataset, spared_gene_lengths
from evaluator.datasets.release import completion_config
from evaluator.datasets.schema import PATCHES_KEY, SPATIAL_KEY

STEP_NAMES: tuple[str, ...] = (
    "filter_spots", "filter_genes", "drop_empty_spots", "tpm", "log1p", "median_filter",
    "moran", "top_genes", "combat", "deltas", "mask", "spackle",
)


class StepRecord(BaseModel):
    """What one step did: spots and genes in and out, missing data before and after, cost."""

    model_config = ConfigDict(extra="forbid")

    name: str
    spots_in: int
    spots_out: int
    genes_in: int
    genes_out: int
    missing_before: float
    missing_after: float
    seconds: float
    peak_rss_mb: float
    note: str = ""


class PipelineReport(BaseModel):
    """A whole run: its steps and Table 1's figures for the dataset."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    source: str
    steps: list[StepRecord]
    spots: int
    genes: int
    slides: int
    patients: int
    missing_before_pct: float
    missing_after_pct: float
    corrupt_spots_pct: float
    seconds: float

    def step(self, name: str) -> StepRecord:
        """Return the record of step ``name`` (KeyError when it did not run)."""
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def table(self) -> str:
        """Render the steps and the summary as a plain-text table."""
        header = ["step", "spots", "genes", "missing before", "missing after", "s", "peak MB",
                  "note"]
        rows = [[r.name, f"{r.spots_in:,} -> {r.spots_out:,}",
                 f"{r.genes_in:,} -> {r.genes_out:,}", f"{100 * r.missing_before:.1f}%",
                 f"{100 * r.missing_after:.1f}%", f"{r.seconds:.2f}", f"{r.peak_rss_mb:.0f}",
                 r.note] for r in self.steps]
        cells = [header, *rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                 for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(
            f"{self.dataset}: {self.slides} slides, {self.patients} patients, {self.spots:,} "
            f"spots, {self.genes} genes; corrupt spots {self.corrupt_spots_pct:.0f}%, missing "
            f"data before {self.missing_before_pct:.0f}%, after {self.missing_after_pct:.0f}% "
            f"(Table 1's columns); {self.seconds:.1f}s")
        return "\n".join(lines)


# -- measuring ---------------------------------------------------------------------------------


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) so each step gets its own.
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _peak_rss_mb() -> float:
    with contextlib.suppress(OSError), open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _Clock:
    """Accumulates wall time and peak memory per step name (a step may run in pieces)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        _reset_peak_rss()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), _peak_rss_mb())


# -- the run -----------------------------------------------------------------------------------


class _Run:
    """State of one run: the current spots, genes and counts, and the records so far."""

    def __init__(self, raw: RawData, config: PipelineConfig,
                 on_step: Callable[[StepRecord], None] | None, progress: bool = False) -> None:
        self.raw = raw
        self.config = config
        self.on_step = on_step
        steps_run = len(STEP_NAMES) - (0 if config.spackle else 1)
        self.bar = tqdm(total=steps_run, desc=f"{config.dataset}: pipeline", unit="step",
                        disable=not progress, file=sys.stderr, leave=False)
        self.clock = _Clock()
        self.records: list[StepRecord] = []
        self.spots = np.arange(raw.n_spots)  # rows of the raw data still in
        self.genes = np.arange(raw.n_genes)  # columns of the raw data still in
        self.counts: sp.csr_matrix = raw.counts
        self.filtered_genes = self.genes  # the genes kept by filter_genes

    def record(self, name: str, *, spots_in: int, genes_in: int, missing_before: float,
               missing_after: float | None = None, spots_out: int | None = None,
               genes_out: int | None = None, note: str = "") -> None:
        record = StepRecord(
            name=name, spots_in=spots_in, genes_in=genes_in,
            spots_out=self.spots.size if spots_out is None else spots_out,
            genes_out=self.genes.size if genes_out is None else genes_out,
            missing_before=missing_before,
            missing_after=missing_before if missing_after is None else missing_after,
            seconds=self.clock.seconds.get(name, 0.0),
            peak_rss_mb=self.clock.peak_mb.get(name, 0.0),
            note=note)
        self.records.append(record)
        self.bar.set_postfix_str(f"{name} done", refresh=False)
        self.bar.update(1)
        if self.on_step is not None:
            self.on_step(record)

    def shape(self) -> tuple[int, int, float]:
        return self.spots.size, self.genes.size, steps.missing_fraction(self.counts)

    def keep_spots(self, keep: np.ndarray) -> None:
        self.spots = self.spots[keep]
        self.counts = self.counts[np.flatnonzero(keep)]

    def keep_genes(self, keep: np.ndarray) -> None:
        self.genes = self.genes[keep]
        self.counts = self.counts[:, np.flatnonzero(keep)].tocsr()


def _too_few(what: str, found: int, needed: int, step: str, config: PipelineConfig) -> None:
    if found < needed:
        raise PipelineError(
            f"{config.dataset}: step {step}: expected at least {needed} {what} to go on, found "
            f"{found}; relax the thresholds in the dataset's pipeline config")


def _filter(run: _Run) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-3; returns (exp_frac, glob_exp_frac) of the kept genes."""
    config = run.config
    n, g, missing = run.shape()
    with run.clock.measure("filter_spots"):
        totals = steps.spot_totals(run.counts)
        run.keep_spots(steps.inside(totals, config.cell_min_counts, config.cell_max_counts))
    _too_few("spots", run.spots.size, 2, "filter_spots", config)
    run.record("filter_spots", spots_in=n, genes_in=g, missing_before=missing,
               missing_after=steps.missing_fraction(run.counts),
               note=f"total counts in ({config.cell_min_counts:g}, {config.cell_max_counts:g})")

    n, g, missing = run.shape()
    with run.clock.measure("filter_genes"):
        slides = run.raw.obs["slide_id"].to_numpy()[run.spots]
        codes, _ = pd.factorize(slides)
        exp_frac, glob_exp_frac = steps.expression_fractions(run.counts, codes)
        by_counts = steps.inside(steps.gene_totals(run.counts), config.gene_min_counts,
                                 config.gene_max_counts)
        by_fraction = (by_counts & (exp_frac >= config.min_exp_frac)
                       & (glob_exp_frac >= config.min_glob_exp_frac))
        keep = by_fraction.copy()
        if config.real_data_percentage > 0:
            positions = np.flatnonzero(by_fraction)
            rule = steps.real_data_rule(exp_frac[positions], glob_exp_frac[positions],
                                        config.real_data_percentage,
                                        ties="pandas" if config.mode == "spared" else "stable")
            keep[:] = False
            keep[positions[rule]] = True
        run.keep_genes(keep)
        run.filtered_genes = run.genes.copy()
    _too_few("genes", run.genes.size, config.top_moran_genes, "filter_genes", config)
    run.record("filter_genes", spots_in=n, genes_in=g, missing_before=missing,
               missing_after=steps.missing_fraction(run.counts),
               note=f"{int(by_counts.sum()):,} by counts, {int(by_fraction.sum()):,} by "
                    f"fractions, {int(keep.sum()):,} by real_data_percentage "
                    f"{config.real_data_percentage:g}")

    n, g, missing = run.shape()
    with run.clock.measure("drop_empty_spots"):
        run.keep_spots(steps.spot_totals(run.counts) > 0)
    _too_few("spots", run.spots.size, 2, "drop_empty_spots", config)
    run.record("drop_empty_spots", spots_in=n, genes_in=g, missing_before=missing,
               missing_after=steps.missing_fraction(run.counts))
    return exp_frac[keep], glob_exp_frac[keep]


class _Best:
    """The best ``k`` genes by score seen so far and their ``d_log1p`` columns."""

    def __init__(self, n_spots: int, k: int) -> None:
        self.k = k
        self.scores = np.zeros(0)
        self.genes = np.zeros(0, dtype=np.int64)
        self.columns = np.zeros((n_spots, 0), dtype=np.float32)

    def offer(self, scores: np.ndarray, genes: np.ndarray, columns: np.ndarray) -> None:
        all_scores = np.concatenate([self.scores, scores])
        all_genes = np.concatenate([self.genes, genes])
        # Same total order as ranking all genes at once: score, then gene position.
        key = np.where(np.isfinite(all_scores), all_scores, -np.inf)
        order = np.lexsort((all_genes, -key))[: self.k]
        stacked = np.concatenate([self.columns, columns], axis=1)
        self.scores, self.genes = all_scores[order], all_genes[order]
        self.columns = np.ascontiguousarray(stacked[:, order])


def _rank_genes(run: _Run, progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                      np.ndarray, np.ndarray]:
    """Steps 4-8; returns (selected positions, their Moran's I, all Moran's I, d_log1p, scale)."""
    config = run.config
    n, g, missing = run.shape()
    with run.clock.measure("tpm"):
        lengths = gene_lengths(run.raw, config)[run.genes]
        has_length = np.isfinite(lengths) & (lengths > 0)
        run.keep_genes(has_length)
        lengths = lengths[has_length]
        scale = steps.tpm_scale(run.counts, lengths)
        counts_csc = run.counts.tocsc()
    if config.gene_lengths == "spared" and run.genes.size < config.top_moran_genes:
        raise PipelineError(
            f"{config.dataset}: step tpm: expected at least {config.top_moran_genes} genes in "
            f"SpaRED's {config.organism} gene-length table (Ensembl ids without version, as "
            f"var['gene_ids'] or var_names), found {run.genes.size}; set gene_lengths 'input' "
            "in the dataset's pipeline config to use the input's var['gene_length']")
    _too_few("genes with a length", run.genes.size, config.top_moran_genes, "tpm", config)
    tpm_before = (n, g, missing, int((~has_length).sum()))

    n_spots, n_genes = run.spots.size, run.genes.size
    obs = run.raw.obs.iloc[run.spots]
    rows = obs["array_row"].to_numpy(np.int64)
    cols = obs["array_col"].to_numpy(np.int64)
    slides = obs["slide_id"].to_numpy().astype(str)
    graph = None
    if config.mode == "spared":
        codes, _ = pd.factorize(slides)
        try:
            graph = steps.spared_knn_graph(run.raw.spatial[run.spots], codes)
        except ValueError as exc:
            raise PipelineError(f"{config.dataset}: step median_filter: {exc}") from exc
    groups = []
    for slide in pd.unique(slides):
        index = np.flatnonzero(slides == slide)
        groups.append((index, hex_neighbors(rows[index], cols[index]) if graph is None
                       else graph[index][:, index]))
    moran_backend = "spared" if config.mode == "spared" else config.moran_backend
    # ~6 float32 spots x chunk arrays are alive at once (counts, tpm, log1p, mask, d_log1p,
    # the median filter's own blocks).
    chunk = int(max(1, min(n_genes, config.chunk_mb * 1e6 // (n_spots * 4 * 6))))
    best = _Best(n_spots, config.top_moran_genes)
    all_scores = np.full(n_genes, np.nan)
    missing_entries = filled_entries = 0
    starts = range(0, n_genes, chunk)
    for start in tqdm(starts, desc=f"{config.dataset}: median filter + Moran's I",
                      unit="block", disable=not progress or len(starts) < 2, file=sys.stderr):
        block = slice(start, min(n_genes, start + chunk))
        with run.clock.measure("tpm"):
            values = steps.tpm(counts_csc[:, block], lengths[block], scale)
        with run.clock.measure("log1p"):
            values = steps.log2_1p(values)
        with run.clock.measure("median_filter"):
            mask = values != 0
            completed = adaptive_median_filter(values, mask, rows, cols, slides,
                                               n_hops=config.n_hops, adjacency=graph)
            missing_entries += int((~mask).sum())
            filled_entries += int(np.count_nonzero(completed[~mask]))
        with run.clock.measure("moran"):
            scores = steps.mean_morans_i(completed, groups, moran_backend)
            all_scores[block] = scores
        with run.clock.measure("top_genes"):
            best.offer(scores, np.arange(block.start, block.stop), completed)
        del values, mask, completed
    missing = steps.missing_fraction(run.counts)
    # Recorded after the blocks: each block's TPM counts towards the step's time.
    n, g, before, no_length = tpm_before
    run.record("tpm", spots_in=n, genes_in=g, missing_before=before, missing_after=missing,
               note=f"{no_length} genes without a length dropped")
    run.record("log1p", spots_in=n_spots, genes_in=n_genes, missing_before=missing)
    run.record("median_filter", spots_in=n_spots, genes_in=n_genes, missing_before=missing,
               note=f"n_hops {config.n_hops}; filled {filled_entries:,} of "
                    f"{missing_entries:,} missing entries in blocks of {chunk} genes")
    n_scored = int(np.isfinite(all_scores).sum())
    run.record("moran", spots_in=n_spots, genes_in=n_genes, missing_before=missing,
               note=f"{moran_backend}; {len(groups)} slides; {n_genes - n_scored} genes "
                    "without a score")
    return best.genes, best.scores, all_scores, best.columns, scale


def process_raw(
    raw: RawData,
    config: PipelineConfig,
    *,
    cache_dir: Path,
    data_hash: str | None = None,
    progress: bool = False,
    on_step: Callable[[StepRecord], None] | None = None,
    with_patches: bool = True,
    completion: SpackleConfig | None = None,
) -> tuple[ad.AnnData, PipelineReport]:
    """Process raw counts into a schema-valid SpaRED dataset; return it and the run's report.

    ``with_patches=False`` leaves ``obsm['patches_scale_1.0']`` out (``process_file`` streams
    the kept spots' patches from ``raw.patches`` to the output instead).

    ``cache_dir`` holds the SpaCKLE models (trained once per ``data_hash``, data and SpaCKLE
    configuration ``completion``, default SpaCKLE's own budget, as for releases).
    ``on_step`` receives each step's record as it finishes; ``progress`` draws bars on stderr
    (steps, gene blocks, SpaCKLE's training). Raises ``PipelineError`` when a
    step leaves too few spots or genes.
    """
    # why here: ComBat needs scanpy or pyComBat (science extra, seconds to import); `data synth-raw`
    # imports this package without running a step
    from evaluator.datasets.combat import combat_correct, pycombat_correct

    started = time.perf_counter()
    config = config.resolved()
    run = _Run(raw, config, on_step, progress)
    missing_raw = steps.missing_fraction(raw.counts)
    exp_frac, glob_exp_frac = _filter(run)
    selected, selected_scores, all_scores, d_log1p, scale = _rank_genes(run, progress)

    n, g, missing = run.shape()
    with run.clock.measure("top_genes"):
        genes_kept = run.genes
        counts = run.counts[:, selected].toarray().astype(np.float32)
        lengths = gene_lengths(raw, config)[genes_kept[selected]]
        tpm = steps.tpm(counts, lengths, scale)
        log1p = steps.log2_1p(tpm)
        run.genes = genes_kept[selected]
        run.counts = sp.csr_matrix(counts)
    run.record("top_genes", spots_in=n, genes_in=g, missing_before=missing,
               missing_after=steps.missing_fraction(counts),
               note=f"top {config.top_moran_genes} by Moran's I ({selected_scores.min():.3f} "
                    f"to {selected_scores.max():.3f})")

    obs = raw.obs.iloc[run.spots].copy()
    n, g, missing = run.shape()
    with run.clock.measure("combat"):
        if config.combat_key is None:
            c_log1p, c_d_log1p = log1p.copy(), d_log1p.copy()
        else:
            batches = obs[config.combat_key].astype(str).to_numpy()
            correct = pycombat_correct if config.mode == "spared" else combat_correct
            c_log1p = correct(log1p, batches)
            c_d_log1p = correct(d_log1p, batches)
    n_batches = obs[config.combat_key].nunique() if config.combat_key else 1
    run.record("combat", spots_in=n, genes_in=g, missing_before=missing,
               note=(f"{n_batches} batches of {config.combat_key}" if config.combat_key
                     else "no correction (combat_key null)"))

    train = obs["split"].astype(str).to_numpy() == "train"
    layers: dict[str, np.ndarray] = {
        "counts": counts, "tpm": tpm, "log1p": log1p, "d_log1p": d_log1p,
        "c_log1p": c_log1p, "c_d_log1p": c_d_log1p,
    }
    var = raw.var.iloc[run.genes].copy()
    var["gene_length"] = lengths
    # The fractions follow the genes kept by filter_genes (sorted raw columns).
    positions = np.searchsorted(run.filtered_genes, run.genes)
    var["exp_frac"] = exp_frac[positions]
    var["glob_exp_frac"] = glob_exp_frac[positions]
    var["d_log1p_moran"] = selected_scores
    with run.clock.measure("deltas"):
        for source, target in (("log1p", "deltas"), ("d_log1p", "d_deltas"),
                               ("c_log1p", "c_deltas"), ("c_d_log1p", "c_d_deltas")):
            layers[target], var[f"{source}_avg_exp"] = steps.deltas(layers[source], train)
    run.record("deltas", spots_in=n, genes_in=g, missing_before=missing,
               note=f"training mean of {int(train.sum()):,} spots")
    with run.clock.measure("mask"):
        mask = tpm != 0
    run.record("mask", spots_in=n, genes_in=g, missing_before=missing,
               note=f"{100 * (1 - mask.mean()):.1f}% missing")

    for column in ("split", "slide_id", "patient"):
        obs[column] = obs[column].astype(str).astype("category")
    adata = ad.AnnData(X=counts.copy(), obs=obs, var=var, layers={**layers, "mask": mask})
    adata.obsm[SPATIAL_KEY] = raw.spatial[run.spots]
    if with_patches:
        adata.obsm[PATCHES_KEY] = np.asarray(raw.patches[run.spots])
    adata.uns["patch_shape"] = list(raw.patch_shape)
    if config.spackle:
        _spackle(run, adata, cache_dir, data_hash, progress, train,
                 completion or completion_config())
    add_noisy_layers(adata)

    report = PipelineReport(
        dataset=config.dataset, source=raw.source, steps=run.records, spots=adata.n_obs,
        genes=adata.n_vars, slides=int(obs["slide_id"].nunique()),
        patients=int(obs["patient"].nunique()), missing_before_pct=100 * missing_raw,
        missing_after_pct=100 * float(1 - mask.mean()),
        corrupt_spots_pct=100 * float((~mask).any(axis=1).mean()),
        seconds=time.perf_counter() - started)
    adata.uns["spared_bench"] = {
        "dataset": config.dataset, "source": "pipeline", "pipeline_version": PIPELINE_VERSION,
        "config_json": json.dumps(config.model_dump(mode="json"), sort_keys=True),
        "report_json": report.model_dump_json(),
    }
    del all_scores
    run.bar.close()
    return adata, report


def gene_lengths(raw: RawData, config: PipelineConfig) -> np.ndarray:
    """Return the length of every raw gene for TPM (float64, NaN where unknown).

    ``gene_lengths='spared'``: SpaRED's table of the organism (``spared_gene_lengths``) looked
    up by gene id (``var['gene_ids']``, else ``var_names``), as SpaRED's ``tpm_normalization``
    does with ``adata.var_names``; ``input``: the raw input's ``var['gene_length']``.
    """
    if config.gene_lengths == "input":
        return raw.var["gene_length"].to_numpy(dtype=np.float64)

    table = spared_gene_lengths(config.organism or get_dataset(config.dataset).organism)
    ids = (raw.var["gene_ids"] if "gene_ids" in raw.var.columns else raw.var.index).astype(str)
    return np.array([table.get(g, np.nan) for g in ids], dtype=np.float64)


NOISY_LAYERS: tuple[str, ...] = ("c_d_log1p", "c_t_log1p", "c_d_deltas", "c_t_deltas")
"""Layers SpaRED's ``process_dataset`` corrupts back into ``noisy_<layer>`` (those present)."""


def add_noisy_layers(adata: ad.AnnData) -> None:
    """Add SpaRED's ``noisy_<layer>`` layers (``add_noisy_layer``) for ``NOISY_LAYERS`` present.

    Missing (mask-False) entries are set back to 0 in a ``log1p`` layer and to minus the gene's
    training mean in a ``deltas`` layer (``var['used_mean_<layer>']`` records that mean, as
    SpaRED does).
    """
    mask = np.asarray(adata.layers["mask"], dtype=bool)
    for layer in NOISY_LAYERS:
        if layer not in adata.layers:
            continue
        values = np.asarray(adata.layers[layer], dtype=np.float32)
        if "delta" in layer:
            mean = adata.var[f"{layer.replace('deltas', 'log1p')}_avg_exp"].to_numpy(np.float64)
            adata.layers[f"noisy_{layer}"] = steps.noisy(values, mask, -mean[None, :])
            adata.var[f"used_mean_{layer}"] = mean
        else:
            adata.layers[f"noisy_{layer}"] = steps.noisy(values, mask)


def _spackle(run: _Run, adata: ad.AnnData, cache_dir: Path, data_hash: str | None,
             progress: bool, train: np.ndarray, completion: SpackleConfig) -> None:
    # why here: SpaCKLE needs torch (the science extra); the other steps and `data synth-raw`
    # (which imports this package) do not
    from evaluator.completion.layers import add_completion_layers

    n, g, missing = run.shape()
    key = data_hash or _content_hash(adata)
    with run.clock.measure("spackle"):
        report = add_completion_layers(adata, cache_dir=cache_dir, data_hash=key,
                                       config=completion, progress=progress,
                                       source=run.config.dataset)
        completed = np.asarray(adata.layers["c_t_log1p"], dtype=np.float32)
        adata.layers["c_t_log1p"] = completed
        adata.layers["c_t_deltas"], adata.var["c_t_log1p_avg_exp"] = steps.deltas(completed,
                                                                                  train)
    run.record("spackle", spots_in=n, genes_in=g, missing_before=missing,
               note=("reused the cached model" if report.cache_hit else "trained")
               + f" (at most {completion.max_steps} steps)")


def _content_hash(adata: ad.AnnData) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(adata.layers["c_d_log1p"]).tobytes())
    digest.update(json.dumps([str(g) for g in adata.var_names]).encode())
    return digest.hexdigest()


def process_file(
    raw_path: Path | str,
    dataset: str,
    out_path: Path | str,
    *,
    cache_dir: Path,
    config_path: Path | str | None = None,
    mode: str | None = None,
    progress: bool = False,
    on_step: Callable[[StepRecord], None] | None = None,
    completion: SpackleConfig | None = None,
) -> PipelineReport:
    """Read a raw input, process it with its config and write the dataset to ``out_path``.

    ``mode`` (``spared`` or ``exact-hex``) overrides the configuration's.

    The patches move in chunks from the input (or from the images, through ``.npy`` files in
    a temporary folder beside ``out_path``) to the output. The written file is checked against
    the schema with the registry's gene count before it is renamed into place. Raises
    ``RawInputError``, ``PipelineConfigError``, ``PipelineError``, ``SchemaError``.
    """
    info = get_dataset(dataset)
    config = load_config(config_path, info.name)
    if mode is not None:
        config = PipelineConfig(**{**config.model_dump(), "mode": mode}).resolved()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".patches.", dir=out_path.parent) as work:
        raw = read_raw(raw_path, progress=progress, work_dir=Path(work))
        data_hash = config.fingerprint(input_fingerprint(raw_path))
        adata, report = process_raw(raw, config, cache_dir=cache_dir, data_hash=data_hash,
                                    progress=progress, on_step=on_step, with_patches=False,
                                    completion=completion)
        kept = raw.obs.index.get_indexer(adata.obs_names)
        chunks = (raw.patches.iter_selected(kept) if isinstance(raw.patches, PatchRows)
                  else iter([np.asarray(raw.patches)[kept]]))
        with atomic_path(out_path) as tmp:
            write_h5ad_with_patches(adata, tmp, adata.n_obs, raw.patches.shape[1], chunks)
            try:
                check_processed_file(tmp, expected_genes=info.genes,
                                     require_completed=config.spackle)
            except SchemaError as exc:
                raise SchemaError(f"{info.name} (processed from {raw_path})",
                                  exc.problems) from None
    return report
