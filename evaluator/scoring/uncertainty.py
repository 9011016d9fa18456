"""Uncertainty of scores and ranks: spatial block bootstrap per job, dataset bootstrap of the
ranking, paired Wilcoxon tests with Holm's correction, skill against the mean baseline.

Pure numpy/scipy functions; the store keeps their inputs (``BlockStats``), the leaderboard shows
their outputs.

**Per job (spatial block bootstrap).** Hidden spots are cut into square tiles of the Visium
array on each hidden slide: ``BLOCK_ROWS`` array rows x ``BLOCK_COLS`` array columns (Visium's
hex grid steps columns by 2, so a tile is 8 x 8 spots, about 0.7 mm x 0.8 mm at 100 µm
centre-to-centre). Neighbouring spots share tissue and, for image-based predictors, share
neighbouring patches, so their errors correlate; resampling single spots would pretend they are
independent and give intervals that are too narrow. Blocks keep that dependence inside a unit
(Künsch 1989; Lahiri, *Resampling Methods for Dependent Data*, 2003, ch. 12 for spatial
lattices). Block side: Lahiri's rate for variance estimation on a d-dimensional lattice is
n^(1/(d+2)), i.e. n^(1/4) in 2-D, which is 6.7-8 spots for the 2,000-4,000 hidden spots of a
SpaRED slide; 8 spots also exceeds the few rings of neighbours over which expression residuals
of Visium spots typically correlate. The constant of the rate is not tuned (we have no
spatially-resolved ground truth of interval coverage); the size is a parameter, recorded with
the statistics. Without spot coordinates (arrays, .npz truth) each spot is its own block: the
ordinary bootstrap, labelled ``scheme="spot"``.

Resampling is stratified by slide: each resample draws, on every hidden slide, as many blocks as
the slide has, uniformly with replacement (``rng.integers(0, m, (R, m))``, the draws of
``scipy.stats.bootstrap``). MSE and PCC-Gene of a resample come from the per-block sufficient
statistics (``BlockStats``) weighted by how often each block was drawn; the 95 % interval is the
percentile interval (2.5 and 97.5 % quantiles, numpy's linear rule, as scipy's ``percentile``
method). For one slide the interval equals ``scipy.stats.bootstrap(..., method="percentile")``
on the block indices with the same seed (tested).

**Ranking (dataset bootstrap).** Datasets are the benchmark's unit of generalization: resample
the D datasets with replacement (R x D draws, as above), and on each resample take every
entry's mean normalized MSE (the per-dataset normalisation by the best entry does not depend on
which datasets are drawn) and rank the entries (ties share the better rank). Intervals: the
percentile interval of the mean, and for ranks the 2.5 % quantile (``lower``) to the 97.5 %
quantile (``higher``) of the resampled ranks, so they are whole ranks. Seed ``DEFAULT_SEED``
unless given: the same table gives the same intervals.

**Paired tests.** For each pair (a, b) of ranked entries: the Wilcoxon signed-rank test on the
per-dataset MSE differences d = MSE_a - MSE_b (Wilcoxon 1945), two-sided, zeros dropped
(``zero_method="wilcox"``), exactly as ``scipy.stats.wilcoxon``'s defaults decide: the exact null
distribution without ties or zeros (n <= 50), the normal approximation with tie correction (no
continuity correction) otherwise, and scipy's exhaustive sign-flip test for ties or zeros with
n <= 13. A pair whose differences are all zero gets p = 1.
Then Holm's step-down correction over all pairs (Holm 1979). The p-value of a pair depends only
on that pair's results, not on which other entries are in the pool (unlike mean-rank tests,
Benavoli, Corani & Mangili, JMLR 2016). Effect sizes: the median over datasets of the paired
difference of normalized MSE, and the matched-pairs rank-biserial correlation
r = (R+ - R-) / (R+ + R-) on the same signed ranks (Kerby 2014); negative favours a.

**Skill.** Per dataset, 1 - MSE / MSE of the ``mean`` baseline (the negative control every
release carries): 0 = no better than predicting each gene's training mean, 1 = perfect, < 0 =
worse than the control. Averaged over datasets, with the dataset-bootstrap percentile interval.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict

from evaluator.scoring.errors import MetricInputError

BLOCK_ROWS = 8
BLOCK_COLS = 16
DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 14
CONFIDENCE = 0.95
# A gene whose standard deviation (over a resample's entries) is below this fraction of its
# values' scale (|mean| + rms deviation over all hidden spots) is constant there: PCC 0, as
# ``metrics.py`` defines. Centring on a mean that is off by an ulp leaves ~1e-16 of the scale.
_CONSTANT_STD = 1e-10
_GENE_STATS = ("n", "st", "sp", "stt", "spp", "stp")


def spatial_blocks(slide_ids: np.ndarray, array_row: np.ndarray, array_col: np.ndarray, *,
                   block_rows: int = BLOCK_ROWS, block_cols: int = BLOCK_COLS
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Assign each spot to a tile of ``block_rows`` x ``block_cols`` array positions per slide.

    Returns (block index of each spot, slide index of each block); blocks are numbered by
    (slide, tile row, tile column), slides in sorted order. Only tiles holding a spot exist.
    """
    slides = np.asarray(slide_ids).astype(str)
    rows = np.asarray(array_row, dtype=np.int64)
    cols = np.asarray(array_col, dtype=np.int64)
    if not (slides.shape == rows.shape == cols.shape) or slides.ndim != 1:
        raise MetricInputError("spot layout", "slide_id, array_row, array_col of one length",
                               f"shapes {slides.shape}, {rows.shape}, {cols.shape}")
    if block_rows < 1 or block_cols < 1:
        raise MetricInputError("block size", "block_rows and block_cols >= 1",
                               f"{block_rows} x {block_cols}")
    _, slide_index = np.unique(slides, return_inverse=True)
    keys = np.stack([slide_index, rows // block_rows, cols // block_cols], axis=1)
    unique, block = np.unique(keys, axis=0, return_inverse=True)
    return block.reshape(-1).astype(np.int64), unique[:, 0].astype(np.int64)


@dataclass(frozen=True)
class BlockStats:
    """Per-block sufficient statistics of one job: what its bootstrap needs, nothing more.

    ``block_slide`` (blocks,): slide index of each block. ``mse`` (2, blocks): measured entries
    and Σ(t-p)². ``gene`` (6, blocks, genes): n, Σt', Σp', Σt'², Σp'², Σt'p' with t' = t - c,
    p' = p - e centred on each gene's measured mean over all hidden spots (``shift``, (2, genes))
    so one-pass variances keep their digits. ``scheme``: ``spatial`` tiles or ``spot`` (each spot
    its own block); ``block_shape``: (array rows, array columns) of a tile.
    """

    block_slide: np.ndarray
    mse: np.ndarray
    gene: np.ndarray
    shift: np.ndarray
    scheme: str
    block_shape: tuple[int, int]

    @property
    def n_blocks(self) -> int:
        """How many blocks the hidden spots fall into."""
        return int(self.block_slide.size)

    def to_bytes(self) -> bytes:
        """Serialise as a compressed .npz (float64, lossless), for the results table."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, block_slide=self.block_slide, mse=self.mse, gene=self.gene,
                            shift=self.shift, scheme=np.array(self.scheme),
                            block_shape=np.array(self.block_shape, dtype=np.int64))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> BlockStats:
        """Read what ``to_bytes`` wrote."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            shape = npz["block_shape"]
            return cls(block_slide=npz["block_slide"], mse=npz["mse"], gene=npz["gene"],
                       shift=npz["shift"], scheme=str(npz["scheme"]),
                       block_shape=(int(shape[0]), int(shape[1])))


def block_stats(truth: np.ndarray, pred: np.ndarray, mask: np.ndarray, block: np.ndarray,
                block_slide: np.ndarray, *, scheme: str = "spatial",
                block_shape: tuple[int, int] = (BLOCK_ROWS, BLOCK_COLS)) -> BlockStats:
    """Sum each block's measured entries into the statistics MSE and PCC-Gene are made of.

    ``block`` (spots,) gives each spot's block (0 .. len(block_slide) - 1). Raises
    ``MetricInputError`` when shapes disagree.
    """
    t = np.asarray(truth, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    block = np.asarray(block, dtype=np.int64)
    n_blocks = int(np.asarray(block_slide).size)
    if t.shape != p.shape or t.shape != m.shape or t.ndim != 2 or block.shape != t.shape[:1]:
        raise MetricInputError("block statistics", "truth, prediction, mask (spots x genes) and "
                               "one block per spot", f"{t.shape}, {p.shape}, {m.shape}, "
                               f"{block.shape}")
    if block.size and (block.min() < 0 or block.max() >= n_blocks):
        raise MetricInputError("block", f"indices in [0, {n_blocks})",
                               f"[{block.min()}, {block.max()}]")
    w = m.astype(np.float64)
    n_gene = w.sum(axis=0)
    safe = np.maximum(n_gene, 1.0)
    # Unmeasured entries may hold anything (NaN, inf); they are zeroed before any arithmetic.
    t = np.where(m, t, 0.0)
    p = np.where(m, p, 0.0)
    c = t.sum(axis=0) / safe
    e = p.sum(axis=0) / safe
    tc = np.where(m, t - c, 0.0)
    pc = np.where(m, p - e, 0.0)
    diff2 = (t - p) ** 2
    # One sparse "spot -> block" summation matrix turns every per-spot sum into a matmul.
    onehot = np.zeros((n_blocks, t.shape[0]))
    onehot[block, np.arange(t.shape[0])] = 1.0
    gene = np.stack([onehot @ w, onehot @ tc, onehot @ pc, onehot @ (tc * tc),
                     onehot @ (pc * pc), onehot @ (tc * pc)])
    mse = np.stack([onehot @ w.sum(axis=1), onehot @ diff2.sum(axis=1)])
    return BlockStats(block_slide=np.asarray(block_slide, dtype=np.int64), mse=mse, gene=gene,
                      shift=np.stack([c, e]), scheme=scheme, block_shape=block_shape)


def resample_counts(block_slide: np.ndarray, n_resamples: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Draw (n_resamples, blocks) counts: on each slide, its m blocks drawn m times with
    replacement (``rng.integers(0, m, (n_resamples, m))`` per slide, slides in order)."""
    block_slide = np.asarray(block_slide, dtype=np.int64)
    counts = np.zeros((n_resamples, block_slide.size))
    for slide in np.unique(block_slide):
        members = np.flatnonzero(block_slide == slide)
        draws = rng.integers(0, members.size, (n_resamples, members.size))
        counts[:, members] = _count_rows(draws, members.size)
    return counts


def _count_rows(draws: np.ndarray, size: int) -> np.ndarray:
    """How often each of 0 .. size-1 occurs in each row of ``draws`` (rows x size, float)."""
    offsets = np.arange(draws.shape[0])[:, None] * size
    flat = np.bincount((draws + offsets).ravel(), minlength=draws.shape[0] * size)
    return flat.reshape(draws.shape[0], size).astype(np.float64)


def weighted_metrics(stats: BlockStats, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MSE and PCC-Gene of each row of ``weights`` (resamples x blocks: times each block counts).

    Weights of all ones give the job's own MSE and PCC-Gene (``metrics.py``'s definitions:
    genes without a measured entry are skipped, constant or single-entry genes count as 0).
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    n_mse = weights @ stats.mse[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = np.where(n_mse > 0, (weights @ stats.mse[1]) / n_mse, np.nan)
    n, st, sp, stt, spp, stp = (weights @ stats.gene[i] for i in range(len(_GENE_STATS)))
    safe = np.maximum(n, 1.0)
    var_t = np.maximum(stt - st * st / safe, 0.0)
    var_p = np.maximum(spp - sp * sp / safe, 0.0)
    cov = stp - st * sp / safe
    full = stats.gene.sum(axis=1)
    full_n = np.maximum(full[0], 1.0)
    scale_t = np.abs(stats.shift[0]) + np.sqrt(full[3] / full_n)
    scale_p = np.abs(stats.shift[1]) + np.sqrt(full[4] / full_n)
    ok = (n >= 2) & (var_t > n * (_CONSTANT_STD * scale_t) ** 2) & \
        (var_p > n * (_CONSTANT_STD * scale_p) ** 2)
    r = np.where(ok, cov / np.sqrt(np.where(ok, var_t * var_p, 1.0)), 0.0)
    r = np.clip(r, -1.0, 1.0)
    present = n > 0
    count = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pcc = np.where(count > 0, np.where(present, r, 0.0).sum(axis=1) / count, np.nan)
    return mse, pcc


class JobInterval(BaseModel):
    """A job's MSE and PCC-Gene with their block-bootstrap percentile intervals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mse: float
    mse_low: float
    mse_high: float
    pcc_gene: float
    pcc_gene_low: float
    pcc_gene_high: float
    n_blocks: int
    scheme: str
    block_shape: tuple[int, int]
    n_resamples: int
    seed: int
    confidence: float


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE,
                        axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval: the (1-c)/2 and (1+c)/2 quantiles (numpy's linear rule)."""
    half = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [half, 1.0 - half], axis=axis)
    return low, high


def job_interval(stats: BlockStats, *, n_resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED, confidence: float = CONFIDENCE) -> JobInterval:
    """Bootstrap one job's MSE and PCC-Gene over its spatial blocks (see module docstring)."""
    rng = np.random.default_rng(seed)
    counts = resample_counts(stats.block_slide, n_resamples, rng)
    mse_b, pcc_b = weighted_metrics(stats, counts)
    mse, pcc = weighted_metrics(stats, np.ones((1, stats.n_blocks)))
    mse_low, mse_high = percentile_interval(mse_b[np.isfinite(mse_b)], confidence)
    pcc_low, pcc_high = percentile_interval(pcc_b[np.isfinite(pcc_b)], confidence)
    return JobInterval(mse=float(mse[0]), mse_low=float(mse_low), mse_high=float(mse_high),
                       pcc_gene=float(pcc[0]), pcc_gene_low=float(pcc_low),
                       pcc_gene_high=float(pcc_high), n_blocks=stats.n_blocks,
                       scheme=stats.scheme, block_shape=stats.block_shape,
                       n_resamples=n_resamples, seed=seed, confidence=confidence)


# -- the ranking ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankBootstrap:
    """Dataset-bootstrap intervals of every entry (columns in the order given)."""

    mean_low: np.ndarray
    mean_high: np.ndarray
    rank_low: np.ndarray
    rank_high: np.ndarray
    skill: np.ndarray | None
    skill_low: np.ndarray | None
    skill_high: np.ndarray | None
    n_resamples: int
    seed: int
    confidence: float


def rank_with_ties(values: np.ndarray) -> np.ndarray:
    """Rank along the last axis, 1 = lowest; ties share the better rank (``min``)."""
    # why here: scipy.stats takes ~0.5 s to import; every process that opens the store loads this
    # module
    from scipy.stats import rankdata

    return rankdata(values, method="min", axis=-1).astype(np.int64)


def dataset_bootstrap(normalized: np.ndarray, *, skill: np.ndarray | None = None,
                      n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                      confidence: float = CONFIDENCE) -> RankBootstrap:
    """Resample datasets: intervals of mean normalized MSE, rank and (optionally) skill.

    ``normalized`` and ``skill`` are (datasets x entries). The draws are
    ``default_rng(seed).integers(0, D, (n_resamples, D))``, shared by every entry (paired).
    """
    normalized = np.asarray(normalized, dtype=np.float64)
    n_datasets, _ = normalized.shape
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_datasets, (n_resamples, n_datasets))
    counts = _count_rows(draws, n_datasets) / n_datasets
    means = counts @ normalized
    low, high = percentile_interval(means, confidence)
    # Means equal but for summation order (same draws, tied inputs) must tie: 12 decimals.
    ranks = rank_with_ties(np.round(means, 12))
    half = (1.0 - confidence) / 2.0
    rank_low = np.quantile(ranks, half, axis=0, method="lower")
    rank_high = np.quantile(ranks, 1.0 - half, axis=0, method="higher")
    skill_mean = skill_low = skill_high = None
    if skill is not None:
        skill = np.asarray(skill, dtype=np.float64)
        skill_mean = skill.mean(axis=0)
        skill_low, skill_high = percentile_interval(counts @ skill, confidence)
    return RankBootstrap(mean_low=low, mean_high=high, rank_low=rank_low.astype(np.int64),
                         rank_high=rank_high.astype(np.int64), skill=skill_mean,
                         skill_low=skill_low, skill_high=skill_high, n_resamples=n_resamples,
                         seed=seed, confidence=confidence)


def skill_scores(mse: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """1 - MSE / reference MSE, per dataset (rows) and entry (columns)."""
    return 1.0 - np.asarray(mse, dtype=np.float64) / np.asarray(reference, dtype=np.float64)[:,
                                                                                             None]


# -- paired tests ---------------------------------------------------------------------------------


class PairTest(BaseModel):
    """The Wilcoxon signed-rank test of one pair of entries, Holm-adjusted, with effect sizes.

    ``a`` ranks above (or level with) ``b``; differences are a - b, so negative favours a.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: str
    b: str
    n: int
    statistic: float
    p_value: float
    p_holm: float
    significant: bool
    method: str
    median_difference: float
    rank_biserial: float


class PairTests(BaseModel):
    """Every pair's ``PairTest``, stored by column (pair i is element i of each list): 4,950
    pairs of 100 entries validate in one pass instead of 4,950 models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: list[str]
    b: list[str]
    n: int
    statistic: list[float]
    p_value: list[float]
    p_holm: list[float]
    significant: list[bool]
    method: list[str]
    median_difference: list[float]
    rank_biserial: list[float]

    def __len__(self) -> int:
        return len(self.a)

    def pairs(self) -> list[PairTest]:
        """One ``PairTest`` per pair, in order (a's rank, then b's)."""
        return [PairTest(a=a, b=b, n=self.n, statistic=w, p_value=p, p_holm=h, significant=s,
                         method=m, median_difference=d, rank_biserial=r)
                for a, b, w, p, h, s, m, d, r in zip(
                    self.a, self.b, self.statistic, self.p_value, self.p_holm, self.significant,
                    self.method, self.median_difference, self.rank_biserial, strict=True)]


def _wilcoxon_pmf(n: int) -> np.ndarray:
    """P(T+ = k), k = 0 .. n(n+1)/2, for n untied non-zero differences (subset-sum counts)."""
    top = n * (n + 1) // 2
    counts = np.zeros(top + 1)
    counts[0] = 1.0
    for i in range(1, n + 1):
        counts[i:] = counts[i:] + counts[:-i].copy()
    return counts / 2.0**n


def wilcoxon_pairs(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                           list[str]]:
    """Two-sided Wilcoxon signed-rank tests of many rows of paired differences at once.

    ``d`` (pairs x n). Returns (statistic = min(R+, R-), p-value, R+, R-, method per row) with
    ``scipy.stats.wilcoxon``'s defaults (see module docstring); a row of only zeros gets
    statistic 0 and p = 1.
    """
    # why here: scipy.stats is slow to import (see above)
    from scipy.stats import norm, rankdata

    d = np.atleast_2d(np.asarray(d, dtype=np.float64))
    pairs, n = d.shape
    zero = d == 0
    magnitude = np.where(zero, np.nan, np.abs(d))
    ranks = rankdata(magnitude, axis=1, nan_policy="omit")
    ranks = np.where(zero, 0.0, ranks)
    r_plus = np.where(d > 0, ranks, 0.0).sum(axis=1)
    r_minus = np.where(d < 0, ranks, 0.0).sum(axis=1)
    count = (~zero).sum(axis=1)
    n_zero = zero.sum(axis=1)
    ordered = np.sort(np.where(zero, np.inf, np.abs(d)), axis=1)
    tied = ((ordered[:, 1:] == ordered[:, :-1]) & np.isfinite(ordered[:, 1:])).any(axis=1)
    p = np.ones(pairs)
    methods = ["none"] * pairs
    exact = (n <= 50) & ~tied & (n_zero == 0)
    if exact.any():
        pmf = _wilcoxon_pmf(n)
        cdf = np.cumsum(pmf)
        sf = np.cumsum(pmf[::-1])[::-1]
        k = r_plus[exact].astype(np.int64)
        p[exact] = np.clip(2.0 * np.minimum(sf[k], cdf[k]), 0.0, 1.0)
        for i in np.flatnonzero(exact):
            methods[i] = "exact"
    rest = ~exact & (count > 0)
    small = rest & (n <= 13)
    if small.any():
        # scipy's exhaustive sign-flip test: R+ over all 2^n sign patterns (zeros have rank 0),
        # compared with its relative tolerance of 100 eps.
        signs = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
        null = ranks[small] @ signs.T.astype(np.float64)
        observed = r_plus[small][:, None]
        gamma = np.abs(100.0 * np.finfo(np.float64).eps * observed)
        less = (null <= observed + gamma).mean(axis=1)
        greater = (null >= observed - gamma).mean(axis=1)
        p[small] = np.clip(2.0 * np.minimum(less, greater), 0.0, 1.0)
        for i in np.flatnonzero(small):
            methods[i] = "permutation"
    approx = rest & ~small
    if approx.any():
        c = count[approx].astype(np.float64)
        mean = c * (c + 1.0) / 4.0
        sub = np.sort(magnitude[approx], axis=1)
        tie_sum = np.zeros(sub.shape[0])
        for row in range(sub.shape[0]):
            values = sub[row][np.isfinite(sub[row])]
            _, sizes = np.unique(values, return_counts=True)
            tie_sum[row] = float((sizes**3 - sizes).sum())
        se = np.sqrt((c * (c + 1.0) * (2.0 * c + 1.0) - tie_sum / 2.0) / 24.0)
        z = (r_plus[approx] - mean) / se
        p[approx] = np.clip(2.0 * norm.sf(np.abs(z)), 0.0, 1.0)
        for i in np.flatnonzero(approx):
            methods[i] = "normal"
    return np.minimum(r_plus, r_minus), p, r_plus, r_minus, methods


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979): the i-th smallest p times (m - i + 1),
    made non-decreasing, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="mergesort")
    adjusted = np.maximum.accumulate(np.minimum((m - np.arange(m)) * p[order], 1.0))
    out = np.empty(m)
    out[order] = adjusted
    return out


def paired_tests(mse: np.ndarray, normalized: np.ndarray, labels: list[str], *,
                 alpha: float = 0.05) -> PairTests:
    """Wilcoxon signed-rank on per-dataset MSE for every pair (labels in rank order), Holm over
    all pairs, with the median difference of normalized MSE and the rank-biserial correlation."""
    mse = np.asarray(mse, dtype=np.float64)
    normalized = np.asarray(normalized, dtype=np.float64)
    k = len(labels)
    first, second = np.triu_indices(k, 1)
    if first.size == 0:
        return PairTests(a=[], b=[], n=int(mse.shape[0]), statistic=[], p_value=[], p_holm=[],
                         significant=[], method=[], median_difference=[], rank_biserial=[])
    d = (mse[:, first] - mse[:, second]).T
    statistic, p, r_plus, r_minus, methods = wilcoxon_pairs(d)
    adjusted = holm(p)
    median = np.median(normalized[:, first] - normalized[:, second], axis=0)
    total = r_plus + r_minus
    with np.errstate(invalid="ignore", divide="ignore"):
        biserial = np.where(total > 0, (r_plus - r_minus) / np.where(total > 0, total, 1.0), 0.0)
    return PairTests(a=[labels[i] for i in first.tolist()],
                     b=[labels[j] for j in second.tolist()], n=int(mse.shape[0]),
                     statistic=statistic.tolist(), p_value=p.tolist(), p_holm=adjusted.tolist(),
                     significant=(adjusted < alpha).tolist(), method=methods,
                     median_difference=median.tolist(), rank_biserial=biserial.tolist())


def format_interval(value: float | None, low: float | None, high: float | None,
                    digits: int = 3) -> str:
    """``1.035 [1.01, 1.07]``: the value to ``digits`` decimals, the bounds to 2 (``—`` when
    missing)."""
    if value is None or not math.isfinite(value):
        return "—"
    if low is None or high is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.2f}, {high:.2f}]"
