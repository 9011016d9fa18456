"""SpaRED-like synthetic datasets, deterministic by seed.

Real SpaRED data cannot be downloaded here, so tests, the demo and the benchmarks run on data
generated to look like it (same schema, realistic structure):

- each slide is a blob-shaped tissue region on the Visium hexagonal grid (``array_row``,
  ``array_col``, pixel ``spatial``); slides carry SpaRED's real slide ids and splits (the
  registry's split table) and belong to patients (see ``assign_splits``);
- a latent tissue state per spot — smooth Gaussian random fields (random Fourier features)
  plus discrete tissue domains — drives both the gene expression and the histology patches, so
  an image model can learn expression and a constant predictor is clearly worse;
- counts are negative binomial around a log-linear model of the latent state with patient and
  slide batch effects; their mean level is calibrated so the fraction of zero counts equals the
  dataset's missing-data rate after processing (``missing_after_pct`` of the registry);
- layers follow SpaRED's processing: TPM with gene lengths, log2(TPM+1), the adaptive median
  filter, ComBat on the registry's key, ``mask = tpm != 0``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage, special

from evaluator.completion import adaptive_median_filter
from evaluator.core.fsio import atomic_path
from evaluator.core.visium import VISIUM_COLS, VISIUM_ROWS, visium_grid_to_pixels
from evaluator.datasets.patches import chunk_rows, write_h5ad_with_patches
from evaluator.datasets.registry import DatasetInfo, get_dataset, load_registry

if TYPE_CHECKING:
    import anndata as ad

SizeName = Literal["tiny", "demo", "full"]
GENERATOR_VERSION = "1"


class SizePreset(BaseModel):
    """How big a synthetic size is: which datasets, how many spots, which patch size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    datasets: tuple[str, ...] | None = Field(
        description="dataset names, or None for all 26 in registry order"
    )
    max_spots: int | None = Field(description="cap on spots per dataset; None = real count")
    patch_size: int = Field(gt=0, description="patch side in pixels")


SIZE_PRESETS: dict[SizeName, SizePreset] = {
    # Three datasets that between them cover test/no-test splits, intra/inter-patient and
    # 128/32 genes, at a few hundred spots: the whole test suite's data in seconds.
    "tiny": SizePreset(
        datasets=(
            "villacampa_lung_organoid",
            "mirzazadeh_human_prostate_cancer",
            "mirzazadeh_human_colon_p1",
        ),
        max_spots=320,
        patch_size=8,
    ),
    "demo": SizePreset(
        datasets=(
            "villacampa_lung_organoid",
            "villacampa_kidney_organoid",
            "mirzazadeh_human_prostate_cancer",
            "fan_mouse_olfatory_bulb",
            "mirzazadeh_human_colon_p1",
        ),
        max_spots=900,
        patch_size=16,
    ),
    "full": SizePreset(datasets=None, max_spots=None, patch_size=32),
}

N_FIELDS = 6
N_VISIBLE = 4
N_DOMAINS = 4
N_FOURIER = 48
NB_DISPERSION = 4.0
DROPOUT_SLOPE = 1.5
CALIBRATION_ENTRIES = 200_000
SPOTS_PER_VISIUM_SLIDE = VISIUM_ROWS * VISIUM_COLS // 2
_PINK = np.array([236.0, 160.0, 196.0], dtype=np.float32)
_PURPLE = np.array([84.0, 52.0, 142.0], dtype=np.float32)
_WHITE = np.array([246.0, 244.0, 246.0], dtype=np.float32)


def preset_datasets(size: SizeName) -> list[DatasetInfo]:
    """Return the registry entries a size generates, in order."""
    names = SIZE_PRESETS[size].datasets
    return list(load_registry()) if names is None else [get_dataset(n) for n in names]


def dataset_rng(name: str, seed: int) -> np.random.Generator:
    """Return the generator of one dataset: same (name, seed) → same data, whatever else runs."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


# ---------------------------------------------------------------------------------------------
# Layout: slides, patients, splits, spots on the grid
# ---------------------------------------------------------------------------------------------


def assign_splits(info: DatasetInfo) -> list[tuple[str, str, str]]:
    """Return (slide_id, patient, split) for every slide of the dataset.

    Slide ids and their splits are SpaRED's (the registry's split table, ``info.splits``), in
    the table's order: train, val, test. Patients are not in the table; they are named
    ``<abbreviation>_P<k>`` and spread so a patient stays within one split where the dataset
    has enough of them (every split gets one patient, the rest go to train), slides spread over
    a split's patients evenly; with fewer patients than splits, patients are spread over all
    slides in order.
    """
    table = info.splits
    groups = [(name, getattr(table, name)) for name in ("train", "val", "test")
              if getattr(table, name)]
    patients = [f"{info.abbreviation}_P{p + 1}" for p in range(info.patients)]
    plan: list[tuple[str, str, str]] = []
    if len(patients) >= len(groups):
        shares = [1] * len(groups)
        shares[0] += len(patients) - len(groups)
        first = 0
        for (name, slides), share in zip(groups, shares, strict=True):
            own = patients[first: first + share]
            first += share
            plan += [(slide, own[i * len(own) // len(slides)], name)
                     for i, slide in enumerate(slides)]
    else:
        ordered = [(slide, name) for name, slides in groups for slide in slides]
        plan = [(slide, patients[i * len(patients) // len(ordered)], name)
                for i, (slide, name) in enumerate(ordered)]
    return plan


def spots_per_slide(total: int, n_slides: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` spots over slides (±20%), none above a Visium slide's 4,992 spots.

    Spots a full slide cannot hold go to the others, so the total is always kept.
    """
    if total > n_slides * SPOTS_PER_VISIUM_SLIDE:
        raise ValueError(f"{total} spots do not fit on {n_slides} Visium slides")
    weights = rng.uniform(0.8, 1.2, n_slides)
    counts = np.floor(weights / weights.sum() * total).astype(np.int64)
    counts[: total - counts.sum()] += 1
    while (excess := int(np.clip(counts - SPOTS_PER_VISIUM_SLIDE, 0, None).sum())) > 0:
        counts = np.minimum(counts, SPOTS_PER_VISIUM_SLIDE)
        room = SPOTS_PER_VISIUM_SLIDE - counts
        share = np.floor(room / room.sum() * excess).astype(np.int64)
        share[np.argsort(-room)[: excess - share.sum()]] += 1
        counts += share
    return counts


def _tissue_spots(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``n`` grid positions forming a wobbly blob of tissue."""
    rows, cols = np.meshgrid(np.arange(VISIUM_ROWS), np.arange(VISIUM_COLS), indexing="ij")
    valid = (rows + cols) % 2 == 0
    rows, cols = rows[valid], cols[valid]
    x, y = cols / 2.0, rows * np.sqrt(3) / 2.0
    cx = VISIUM_COLS / 4 + rng.normal(0, 3)
    cy = VISIUM_ROWS * np.sqrt(3) / 4 + rng.normal(0, 3)
    aspect = rng.uniform(0.75, 1.3)
    dx, dy = (x - cx) * aspect, (y - cy) / aspect
    theta = np.arctan2(dy, dx)
    wobble = (1 + 0.15 * np.sin(3 * theta + rng.uniform(0, 2 * np.pi))
              + 0.08 * np.sin(5 * theta + rng.uniform(0, 2 * np.pi)))
    distance = np.hypot(dx, dy) / wobble + rng.uniform(0, 0.3, x.shape)
    keep = np.sort(np.argsort(distance, kind="stable")[:n])
    return rows[keep], cols[keep]


# ---------------------------------------------------------------------------------------------
# Latent tissue state
# ---------------------------------------------------------------------------------------------


def _latent_state(xy_spots: np.ndarray, n_slide_spots: int, rng: np.random.Generator) -> np.ndarray:
    """Return latent features per spot: N_FIELDS smooth fields plus one-hot tissue domains."""
    length_scale = max(2.5, 0.3 * np.sqrt(n_slide_spots))
    omega = rng.normal(0, 1, (N_FIELDS, N_FOURIER, 2)) / length_scale
    phase = rng.uniform(0, 2 * np.pi, (N_FIELDS, N_FOURIER))
    proj = np.einsum("nd,lfd->nlf", xy_spots, omega) + phase[None]
    fields = np.cos(proj).sum(axis=2)
    # Consecutive sections of one tissue share its composition: standardize each slide's fields
    # so slides differ in layout, not in how much of each tissue state they hold.
    fields = (fields - fields.mean(axis=0)) / (fields.std(axis=0) + 1e-9)
    domains = np.argmax(fields[:, :N_DOMAINS] + 0.3 * fields[:, N_DOMAINS - 1 :][:, :1], axis=1)
    onehot = np.eye(N_DOMAINS)[domains]
    return np.concatenate([fields, 1.5 * onehot], axis=1)


@dataclass(frozen=True)
class _DatasetModel:
    """Parameters shared by all slides of a dataset: how latent state maps to data."""

    base_log_mean: np.ndarray  # (genes,)
    loadings: np.ndarray  # (latent, genes)
    gene_length: np.ndarray  # (genes,)
    appearance: np.ndarray  # (latent, 4): nuclei density, eosin, hue, white space
    tint: np.ndarray  # (domains, 3): RGB offset of each tissue domain


def _dataset_model(n_genes: int, rng: np.random.Generator) -> _DatasetModel:
    """Draw how latent state maps to expression and appearance.

    The first ``N_VISIBLE`` fields and the domains show in the histology (nuclei density,
    eosin, hue, white space; a tint per domain) and drive most of the expression; the remaining
    fields drive expression only — the part of biology a picture cannot reveal.
    """
    n_latent = N_FIELDS + N_DOMAINS
    scale = np.full(n_latent, 0.7)
    scale[N_VISIBLE:N_FIELDS] = 0.25
    loadings = rng.normal(0, 1, (n_latent, n_genes)) * scale[:, None]
    loadings *= rng.uniform(0, 1, (n_latent, n_genes)) < 0.7
    appearance = np.zeros((n_latent, 4))
    appearance[:N_VISIBLE, :4] = 1.3 * np.eye(N_VISIBLE, 4) + rng.normal(0, 0.2, (N_VISIBLE, 4))
    return _DatasetModel(
        base_log_mean=rng.normal(1.2, 0.8, n_genes),
        loadings=loadings,
        gene_length=np.round(rng.lognormal(np.log(2500), 0.6, n_genes)).clip(300, 20000),
        appearance=appearance,
        tint=rng.normal(0, 18.0, (N_DOMAINS, 3)),
    )


# ---------------------------------------------------------------------------------------------
# Counts with calibrated dropout
# ---------------------------------------------------------------------------------------------


def _bisect(fn: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """Return x in [lo, hi] with fn(x) ≈ target, for fn decreasing in x."""
    for _ in range(60):
        mid = (lo + hi) / 2
        if fn(mid) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _nb_zero_probability(log_mean: np.ndarray) -> np.ndarray:
    mean = np.exp(log_mean)
    return (NB_DISPERSION / (NB_DISPERSION + mean)) ** NB_DISPERSION


def _calibrate_counts(log_mean: np.ndarray, zero_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (shifted log means, dropout probabilities) giving ``zero_fraction`` zeros overall.

    A quarter of the zeros come from negative-binomial sampling; the rest from technical
    dropout whose probability falls with expression (a logistic in the log mean, as in
    Splatter's dropout model), which keeps measured values informative as in real Visium data.
    """
    # Expectations over a strided sample of entries are exact enough and keep this cheap.
    sample = log_mean.ravel()[:: max(1, log_mean.size // CALIBRATION_ENTRIES)]
    shift = _bisect(lambda x: float(np.mean(_nb_zero_probability(sample + x))),
                    zero_fraction / 4, -15.0, 15.0)
    p_nb = _nb_zero_probability(sample + shift)

    def zeros(midpoint: float) -> float:
        dropout = special.expit(-DROPOUT_SLOPE * (sample + shift - midpoint))
        return float(np.mean(p_nb + (1 - p_nb) * dropout))

    midpoint = _bisect(lambda m: -zeros(m), -zero_fraction, -20.0, 20.0)
    shifted = log_mean + shift
    return shifted, special.expit(-DROPOUT_SLOPE * (shifted - midpoint))


def _sample_counts(log_mean: np.ndarray, dropout: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    mean = np.exp(log_mean)
    counts = rng.negative_binomial(NB_DISPERSION, NB_DISPERSION / (NB_DISPERSION + mean))
    counts[rng.random(counts.shape) < dropout] = 0
    return counts.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Histology-like patches
# ---------------------------------------------------------------------------------------------


RENDER_BUDGET_BYTES = 256 * 1024 * 1024
"""Working memory of one chunk of rendered patches (about 96 bytes per pixel while drawing)."""


def iter_patches(
    latent: np.ndarray,
    appearance: np.ndarray,
    tint: np.ndarray,
    stain: np.ndarray,
    patch_size: int,
    rng: np.random.Generator,
    chunk: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield flattened uint8 H&E-like patches (rows of H*W*3, HWC), a chunk of spots at a time.

    Nuclei (purple blobs) cover a fraction of the patch set by the latent state, the eosin
    (pink) intensity, a hue shift and a white-space share follow it too; ``stain`` is a per-spot
    RGB factor (slide-level staining differences, a realistic nuisance). Chunks hold at most
    4096 spots and ``RENDER_BUDGET_BYTES`` of working memory (53 spots at 224 px), so memory
    does not grow with the dataset. ``rng`` is consumed chunk by chunk, as the chunks are drawn.
    """
    if chunk is None:
        chunk = min(4096, chunk_rows(patch_size * patch_size * 96, RENDER_BUDGET_BYTES))
    params = latent @ appearance
    density = 0.06 + 0.5 * special.expit(params[:, 0])
    eosin = special.expit(params[:, 1])
    hue = np.tanh(params[:, 2] / 2)
    white = 0.35 * special.expit(params[:, 3] - 1.5)
    # Tissue domains differ visibly (as regions of a real section do): a tint per domain.
    domain_tint = (latent[:, N_FIELDS:] / latent[:, N_FIELDS:].max(initial=1.0)) @ tint
    n = latent.shape[0]
    blur_sd = np.sqrt(1.0 / 12.0 / 9.0)  # sd of a 3x3 mean of uniforms
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        m = sl.stop - sl.start
        noise = rng.random((m, patch_size, patch_size), dtype=np.float32)
        blurred = ndimage.uniform_filter(noise, size=(1, 3, 3), mode="wrap")
        del noise
        threshold = 0.5 + blur_sd * special.ndtri(1 - density[sl]).astype(np.float32)
        nuclei = special.expit((blurred - threshold[:, None, None]) / 0.015)[..., None]
        del blurred
        stroma = (_PINK * (0.8 + 0.25 * eosin[sl, None])
                  + np.outer(hue[sl], [12.0, -10.0, 8.0])).astype(np.float32)
        stroma = stroma + domain_tint[sl]
        stroma = (1 - white[sl, None]) * stroma + white[sl, None] * _WHITE
        nucleus = _PURPLE * (0.9 + 0.2 * eosin[sl, None]).astype(np.float32)
        img = (1 - nuclei) * stroma[:, None, None, :] + nuclei * nucleus[:, None, None, :]
        del nuclei
        img *= stain[sl, None, None, :].astype(np.float32)
        img += rng.normal(0, 6, img.shape).astype(np.float32)
        yield np.clip(img, 0, 255).astype(np.uint8).reshape(m, -1)


# ---------------------------------------------------------------------------------------------
# A whole dataset
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulatedTissue:
    """Spots of every slide of a dataset with their latent state, before counts are drawn."""

    obs: pd.DataFrame  # split, slide_id, patient, array_row, array_col
    latent: np.ndarray  # (spots, latent)
    spatial: np.ndarray  # (spots, 2) pixel coordinates
    stain: np.ndarray  # (spots, 3) slide staining factor
    log_mean: np.ndarray  # (spots, genes) log expected counts, before calibration


def simulate_tissue(info: DatasetInfo, total: int, model: _DatasetModel,
                    rng: np.random.Generator) -> SimulatedTissue:
    """Lay ``total`` spots out on the dataset's slides and draw their latent state and means.

    Patient and slide batch effects, library sizes and non-spatial noise enter the log means;
    the gene count is the model's. Shared by the processed and the raw generators.
    """
    n_genes = model.base_log_mean.shape[0]
    slide_plan = assign_splits(info)
    per_slide = spots_per_slide(total, len(slide_plan), rng)
    obs_parts, latent_parts, xy_parts, batch_parts, stain_parts = [], [], [], [], []
    patient_effect = {p: rng.normal(0, 0.25, n_genes) for _, p, _ in slide_plan}
    for (slide, patient, split), n in zip(slide_plan, per_slide, strict=True):
        rows, cols = _tissue_spots(int(n), rng)
        pixels = visium_grid_to_pixels(rows, cols) + rng.uniform(500, 1500, 2)
        xy = np.stack([cols / 2.0, rows * np.sqrt(3) / 2.0], axis=1)
        latent_parts.append(_latent_state(xy, int(n), rng))
        xy_parts.append(pixels)
        batch_parts.append(np.tile(patient_effect[patient] + rng.normal(0, 0.1, n_genes),
                                   (int(n), 1)))
        stain_parts.append(np.tile(rng.normal(1.0, 0.006, 3), (int(n), 1)))
        obs_parts.append(pd.DataFrame({
            "split": split, "slide_id": slide, "patient": patient,
            "array_row": rows.astype(np.int64), "array_col": cols.astype(np.int64),
        }, index=[f"{slide}_{r}x{c}" for r, c in zip(rows, cols, strict=True)]))
    obs = pd.concat(obs_parts)
    for column in ("split", "slide_id", "patient"):
        obs[column] = obs[column].astype("category")
    latent = np.concatenate(latent_parts)
    n_spots = latent.shape[0]
    library = rng.normal(0, 0.3, n_spots) + 0.15 * latent[:, 0]
    log_mean = (model.base_log_mean[None] + latent @ model.loadings
                + np.concatenate(batch_parts) + library[:, None]
                + rng.normal(0, 0.25, (n_spots, n_genes)))
    return SimulatedTissue(obs=obs, latent=latent, spatial=np.concatenate(xy_parts),
                           stain=np.concatenate(stain_parts), log_mean=log_mean)


def patch_side_and_spots(info: DatasetInfo, size: SizeName, patch_size: int | None,
                         max_spots: int | None) -> tuple[int, int]:
    """The patch side (px) and spot count of a synthetic dataset: the size preset's, unless
    given; never more spots than the real dataset has."""
    preset = SIZE_PRESETS[size]
    cap = max_spots if max_spots is not None else preset.max_spots
    return patch_size or preset.patch_size, min(info.spots, cap) if cap else info.spots


def generate_dataset(
    name: str,
    size: SizeName = "tiny",
    seed: int = 0,
    patch_size: int | None = None,
    max_spots: int | None = None,
) -> ad.AnnData:
    """Return one processed, schema-valid synthetic dataset imitating the registry's ``name``.

    ``size`` sets the spot cap and patch size (``SIZE_PRESETS``); ``patch_size`` and
    ``max_spots`` override them. The same arguments always give the same data. Holds every
    patch in memory: for real-size patches use ``synthesize_dataset`` (what ``generate`` does).
    """
    return with_patches(synthesize_dataset(name, size, seed, patch_size, max_spots))


def synthesize_dataset(
    name: str,
    size: SizeName = "tiny",
    seed: int = 0,
    patch_size: int | None = None,
    max_spots: int | None = None,
) -> tuple[ad.AnnData, Iterator[np.ndarray]]:
    """Return a synthetic dataset without its patches, and its patches as chunks of rows.

    The chunks (flattened uint8, one row per spot, in obs order) are drawn as they are
    consumed, so writing them out (``write_h5ad_with_patches``) keeps memory at one chunk.
    Consume them once, before another call with the same arguments if the data must match.
    """
    # why here: anndata is slow to import and ComBat needs scanpy (science extra); the web app loads
    # this module (through evaluator.datasets) without generating data
    import anndata as ad

    from evaluator.datasets.combat import combat_correct

    info = get_dataset(name)
    side, total = patch_side_and_spots(info, size, patch_size, max_spots)
    rng = dataset_rng(info.name, seed)
    model = _dataset_model(info.genes, rng)
    tissue = simulate_tissue(info, total, model, rng)
    obs, latent, log_mean = tissue.obs, tissue.latent, tissue.log_mean
    log_mean, dropout = _calibrate_counts(log_mean, info.missing_after_pct / 100.0)
    counts = _sample_counts(log_mean, dropout, rng)
    # A spot with no counts at all is dropped by SpaRED's filtering; keep one count instead.
    empty = counts.sum(axis=1) == 0
    counts[empty, np.argmax(log_mean[empty], axis=1)] = 1.0

    per_length = counts / model.gene_length[None].astype(np.float32)
    tpm = (per_length / per_length.sum(axis=1, keepdims=True) * 1e6).astype(np.float32)
    log1p = np.log2(tpm + 1.0).astype(np.float32)
    mask = tpm != 0
    slides = obs["slide_id"].to_numpy().astype(str)
    rows_all = obs["array_row"].to_numpy()
    cols_all = obs["array_col"].to_numpy()
    d_log1p = adaptive_median_filter(log1p, mask, rows_all, cols_all, slides)
    batches = obs[info.combat_key].to_numpy().astype(str)
    c_log1p = combat_correct(log1p, batches)
    c_d_log1p = combat_correct(d_log1p, batches)

    chunks = iter_patches(latent, model.appearance, model.tint, tissue.stain, side, rng)
    var = pd.DataFrame(
        {"gene_ids": [f"SYN{info.abbreviation}{g:05d}" for g in range(info.genes)],
         "gene_length": model.gene_length.astype(np.int64)},
        index=[f"{info.abbreviation}-G{g:03d}" for g in range(info.genes)],
    )
    adata = ad.AnnData(X=counts.copy(), obs=obs, var=var)
    adata.layers["counts"] = counts
    adata.layers["tpm"] = tpm
    adata.layers["log1p"] = log1p
    adata.layers["d_log1p"] = d_log1p.astype(np.float32)
    adata.layers["c_log1p"] = c_log1p
    adata.layers["c_d_log1p"] = c_d_log1p
    adata.layers["mask"] = mask
    adata.obsm["spatial"] = tissue.spatial
    adata.uns["patch_shape"] = [side, side, 3]
    adata.uns["spared_bench"] = {
        "dataset": info.name, "source": "synthetic", "size": size, "seed": seed,
        "generator_version": GENERATOR_VERSION,
    }
    return adata, chunks


Synthesize = Callable[[str, SizeName, int, int | None, int | None],
                      tuple["ad.AnnData", Iterator[np.ndarray]]]
"""``synthesize_dataset`` or ``synthesize_raw_dataset``: (name, size, seed, patch size, cap)."""


def with_patches(made: tuple[ad.AnnData, Iterator[np.ndarray]]) -> ad.AnnData:
    """Put every chunk of a synthesized dataset's patches into its ``obsm`` (small data only)."""
    adata, chunks = made
    adata.obsm["patches_scale_1.0"] = np.concatenate(list(chunks))
    return adata


def write_datasets(synthesize: Synthesize, size: SizeName, out_dir: Path, *, seed: int,
                   datasets: Iterable[str] | None, patch_size: int | None,
                   max_spots: int | None, on_dataset: Callable[[str, Path], None] | None
                   ) -> list[Path]:
    """Synthesize each dataset and write it to ``out_dir/<name>.h5ad``, patches in chunks."""
    chosen = ([get_dataset(n) for n in datasets] if datasets is not None
              else preset_datasets(size))
    written = []
    for info in chosen:
        adata, chunks = synthesize(info.name, size, seed, patch_size, max_spots)
        side = int(adata.uns["patch_shape"][0])
        path = Path(out_dir) / f"{info.name}.h5ad"
        with atomic_path(path) as tmp:
            write_h5ad_with_patches(adata, tmp, adata.n_obs, side * side * 3, chunks)
        written.append(path)
        if on_dataset is not None:
            on_dataset(info.name, path)
    return written


def generate(
    size: SizeName,
    out_dir: Path,
    *,
    seed: int = 0,
    datasets: Iterable[str] | None = None,
    patch_size: int | None = None,
    max_spots: int | None = None,
    on_dataset: Callable[[str, Path], None] | None = None,
) -> list[Path]:
    """Generate the datasets of ``size`` into ``out_dir/<name>.h5ad`` (atomic writes).

    ``datasets`` restricts the preset's list (names or abbreviations). ``on_dataset`` is called
    after each file is written (progress reporting). Returns the written paths. Patches are
    drawn and written in chunks: memory does not grow with the data.
    """
    return write_datasets(synthesize_dataset, size, out_dir, seed=seed, datasets=datasets,
                          patch_size=patch_size, max_spots=max_spots, on_dataset=on_dataset)
