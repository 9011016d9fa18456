"""Raw (unfiltered) synthetic counts, the pipeline's input, deterministic by seed.

``evaluator.datasets.synthetic`` generates processed datasets; this module generates what comes
*before* processing, from the same latent model, layout and patches, so the whole pipeline
(``spared-bench data process``) runs in tests and in the demo:

- slides, patients, splits, grid positions, pixel coordinates and H&E-like patches as in
  ``synthetic`` (its ``assign_splits``, ``spots_per_slide``, tissue blobs, latent state and
  ``iter_patches``);
- genes of four kinds, in shuffled order: *structured* genes driven by the latent tissue state
  (the ones Moran's I should pick), *flat* genes as well expressed but with no spatial pattern,
  *sparse* genes rarely detected (filtered out by the expression fractions) and *dead* genes
  with ten counts or fewer in the whole dataset (filtered out by the gene count threshold);
  sparse genes are added until the overall fraction of zeros approaches the dataset's
  ``missing_before_pct`` of Table 1 (capped at 12 per kept gene);
- a few low-quality spots with fewer than ten counts (filtered out by the spot threshold) and
  one spot whose counts lie only in dead genes (dropped as an empty spot);
- negative-binomial counts with patient/slide batch effects and technical dropout calibrated
  to ``missing_after_pct`` on the expressed genes.

Counts are stored as CSR ``X`` (float32 integers). Genes carry real Ensembl ids of the
dataset's organism (``var_names`` = ``var['gene_ids']``) with SpaRED's gene lengths
(``var['gene_length']``, ``real_genes``), so SpaRED's own TPM step keeps them.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from evaluator.datasets.registry import get_dataset, spared_gene_lengths
from evaluator.datasets.synthetic import (
    N_DOMAINS,
    N_FIELDS,
    SPOTS_PER_VISIUM_SLIDE,
    SizeName,
    _calibrate_counts,
    _dataset_model,
    _sample_counts,
    assign_splits,
    iter_patches,
    patch_side_and_spots,
    simulate_tissue,
    with_patches,
    write_datasets,
)

RAW_GENERATOR_VERSION = "2"
STRUCTURED_PER_GENE = 2  # structured genes per gene the registry keeps
FLAT_PER_GENE = 1
SPARSE_DETECTION = 0.02  # chance a sparse gene is detected in a spot
MAX_SPARSE_PER_GENE = 12
LOW_QUALITY_FRACTION = 0.01


def raw_rng(name: str, seed: int) -> np.random.Generator:
    """Return the generator of one raw dataset (a stream apart from the processed generator's)."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode()), 1]))


def _n_sparse(n_dense: int, dense_zero: float, target_zero: float) -> int:
    """Sparse genes that bring the overall zero fraction from ``dense_zero`` to ``target_zero``."""
    sparse_zero = 1.0 - SPARSE_DETECTION
    cap = MAX_SPARSE_PER_GENE * n_dense // (STRUCTURED_PER_GENE + FLAT_PER_GENE)
    if target_zero <= dense_zero:
        return max(4, n_dense // 8)
    if target_zero >= sparse_zero - 1e-3:
        return cap
    wanted = n_dense * (target_zero - dense_zero) / (sparse_zero - target_zero)
    return int(np.clip(round(wanted), n_dense // 8, cap))


def _sparse_block(n_spots: int, n_genes: int, rng: np.random.Generator) -> sp.csc_matrix:
    """Rarely detected genes: each entry non-zero with ``SPARSE_DETECTION``, small counts."""
    total = n_spots * n_genes
    n_hits = int(rng.binomial(total, SPARSE_DETECTION)) if total else 0
    flat = np.unique(rng.integers(0, max(total, 1), n_hits))
    values = (1 + rng.poisson(0.5, flat.size)).astype(np.float32)
    return sp.csc_matrix((values, (flat % n_spots, flat // n_spots)), shape=(n_spots, n_genes))


def _dead_block(n_spots: int, n_genes: int, rng: np.random.Generator) -> sp.csc_matrix:
    """Genes with at most six counts in the whole dataset (room for the empty spot's three)."""
    rows, cols = [], []
    for gene in range(n_genes):
        hits = int(rng.integers(0, 4))
        rows.append(rng.integers(0, n_spots, hits))
        cols.append(np.full(hits, gene))
    row, col = np.concatenate(rows), np.concatenate(cols)
    values = rng.integers(1, 3, row.size).astype(np.float32)
    block = sp.csc_matrix((values, (row, col)), shape=(n_spots, n_genes))
    block.sum_duplicates()
    return block


def real_genes(lengths: np.ndarray, organism: str) -> tuple[list[str], np.ndarray]:
    """Return real gene ids of ``organism`` with the lengths nearest to ``lengths``, and theirs.

    Ids and lengths come from SpaRED's gene-length table (``registry.spared_gene_lengths``),
    so SpaRED's own TPM step finds every synthetic gene. Each id is used once; for each length
    in turn the unused gene of nearest length is taken (smallest id among equals).
    """
    table = spared_gene_lengths(organism)
    ids = np.array(sorted(table), dtype=object)
    sizes = np.array([table[g] for g in ids], dtype=np.int64)
    order = np.lexsort((np.arange(ids.size), sizes))
    ids, sizes = ids[order], sizes[order]
    used = np.zeros(ids.size, dtype=bool)
    chosen = np.empty(len(lengths), dtype=np.int64)
    for i, length in enumerate(np.asarray(lengths, dtype=np.float64)):
        at = int(np.searchsorted(sizes, length))
        left, right = at - 1, at
        while left >= 0 and used[left]:
            left -= 1
        while right < ids.size and used[right]:
            right += 1
        pick = right if left < 0 or (right < ids.size
                                     and sizes[right] - length <= length - sizes[left]) else left
        used[pick] = True
        chosen[i] = pick
    return [str(g) for g in ids[chosen]], sizes[chosen]


def generate_raw_dataset(
    name: str,
    size: SizeName = "tiny",
    seed: int = 0,
    patch_size: int | None = None,
    max_spots: int | None = None,
) -> ad.AnnData:
    """Return the raw counts of a synthetic dataset imitating the registry's ``name``.

    ``size`` sets the spot cap and patch size (``synthetic.SIZE_PRESETS``); after the
    pipeline the dataset has about that many spots (the low-quality and empty spots are
    extra). The same arguments always give the same data. Holds every patch in memory: at
    real size use ``synthesize_raw_dataset`` (what ``generate_raw`` does).
    """
    return with_patches(synthesize_raw_dataset(name, size, seed, patch_size, max_spots))


def synthesize_raw_dataset(
    name: str,
    size: SizeName = "tiny",
    seed: int = 0,
    patch_size: int | None = None,
    max_spots: int | None = None,
) -> tuple[ad.AnnData, Iterator[np.ndarray]]:
    """Return a raw synthetic dataset without its patches, and the patches as chunks of rows."""
    info = get_dataset(name)
    side, kept = patch_side_and_spots(info, size, patch_size, max_spots)
    rng = raw_rng(info.name, seed)
    room = len(assign_splits(info)) * SPOTS_PER_VISIUM_SLIDE - kept
    n_low = int(min(room, max(2, round(LOW_QUALITY_FRACTION * kept))))
    n_empty = 1 if room - n_low >= 1 else 0
    total = kept + n_low + n_empty

    n_structured = STRUCTURED_PER_GENE * info.genes
    n_dense = n_structured + FLAT_PER_GENE * info.genes
    model = _dataset_model(n_dense, rng)
    # Flat genes: no loading on the latent tissue state, so no spatial pattern.
    loadings = model.loadings.copy()
    loadings[:, n_structured:] = 0.0
    model = dataclasses.replace(model, loadings=loadings)

    tissue = simulate_tissue(info, total, model, rng)
    obs, latent, log_mean = tissue.obs, tissue.latent, tissue.log_mean
    n_spots = latent.shape[0]
    dense_zero = info.missing_after_pct / 100.0
    log_mean, dropout = _calibrate_counts(log_mean, dense_zero)
    dense = _sample_counts(log_mean, dropout, rng)
    del log_mean, dropout

    n_sparse = _n_sparse(n_dense, dense_zero, info.missing_before_pct / 100.0)
    n_dead = max(4, info.genes // 8)
    sparse = _sparse_block(n_spots, n_sparse, rng)
    dead = _dead_block(n_spots, n_dead, rng)

    # Low-quality spots: under ten counts; the empty spot: counts only in sparse genes.
    special = rng.choice(n_spots, n_low + n_empty, replace=False)
    low, empty = special[:n_low], special[n_low:]
    dense[special] = 0.0
    for spot in low:
        hits = rng.integers(0, n_dense, int(rng.integers(0, 9)))
        np.add.at(dense[spot], hits, 1.0)
    sparse = sparse.tolil()
    sparse[special] = 0
    dead = dead.tolil()
    dead[special] = 0
    for spot in empty:
        # Counts only in dead genes, which the gene filter removes: an empty spot afterwards.
        dead[spot, rng.choice(n_dead, min(n_dead, 12), replace=False)] = 3.0

    counts = sp.hstack([sp.csr_matrix(dense), sparse.tocsr(), dead.tocsr()], format="csr",
                       dtype=np.float32)
    del dense
    lengths = np.concatenate([
        model.gene_length,
        np.round(rng.lognormal(np.log(2500), 0.6, n_sparse + n_dead)).clip(300, 20000),
    ])
    kinds = np.array(["structured"] * n_structured + ["flat"] * (n_dense - n_structured)
                     + ["sparse"] * n_sparse + ["dead"] * n_dead)
    order = rng.permutation(counts.shape[1])
    counts = counts[:, order].tocsr()
    counts.eliminate_zeros()
    gene_ids, gene_lengths = real_genes(lengths[order], info.organism)
    var = pd.DataFrame(
        {"gene_ids": gene_ids,
         "gene_length": gene_lengths,
         "synthetic_kind": pd.Categorical(kinds[order])},
        index=gene_ids,
    )
    chunks = iter_patches(latent, model.appearance, model.tint, tissue.stain, side, rng)
    adata = ad.AnnData(X=counts, obs=obs, var=var)
    adata.obsm["spatial"] = tissue.spatial
    adata.uns["patch_shape"] = [side, side, 3]
    adata.uns["spared_bench"] = {
        "dataset": info.name, "source": "synthetic-raw", "size": size, "seed": seed,
        "generator_version": RAW_GENERATOR_VERSION, "low_quality_spots": int(n_low),
        "empty_spots": int(n_empty), "latent_fields": N_FIELDS, "latent_domains": N_DOMAINS,
    }
    return adata, chunks


def generate_raw(
    size: SizeName,
    out_dir: Path,
    *,
    seed: int = 0,
    datasets: Iterable[str] | None = None,
    patch_size: int | None = None,
    max_spots: int | None = None,
    on_dataset: Callable[[str, Path], None] | None = None,
) -> list[Path]:
    """Write the raw datasets of ``size`` to ``out_dir/<name>.h5ad`` (atomic writes).

    Patches are drawn and written in chunks: memory does not grow with the data.
    """
    return write_datasets(synthesize_raw_dataset, size, out_dir, seed=seed, datasets=datasets,
                          patch_size=patch_size, max_spots=max_spots, on_dataset=on_dataset)
