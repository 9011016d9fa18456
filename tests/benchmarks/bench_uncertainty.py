"""Uncertainty statistics: the ranking's dataset bootstrap, skill and paired Wilcoxon + Holm for
100 entries x 26 datasets x 2 tracks with 2,000 resamples (target < 500 ms uncached), and one
job's spatial block bootstrap.

Figures, each next to a reference measured in the same process:
- ``uncertainty, 2 tracks``: dataset bootstrap (means, ranks, skill) + Wilcoxon/Holm of all 4,950
  pairs on both tracks, next to the rest of ``compute_statistics`` (Kruskal-Wallis, Dunn,
  Friedman/Nemenyi) on the same tables;
- ``compute_statistics, 2 tracks``: everything the leaderboard computes for an unseen view;
- ``Wilcoxon, all pairs``: the vectorised test next to ``scipy.stats.wilcoxon`` called per pair
  (timed on a sample of pairs and scaled to all of them);
- ``block bootstrap, one job``: 2,000 resamples of a 3,000-spot x 128-gene job (two slides),
  next to computing the job's metrics once (``compute_metrics``, numpy engine).
"""

from __future__ import annotations

import numpy as np

from tests.benchmarks.harness import BenchRow, time_call

N_RESAMPLES = 2000


def _tables(n_entries: int, n_datasets: int) -> dict[str, list[dict[str, object]]]:
    rng = np.random.default_rng(0)
    tables = {}
    for track, shift in (("raw", 0.0), ("spackle", -0.02)):
        quality = rng.uniform(0.3, 1.5, n_entries)
        difficulty = rng.uniform(0.5, 2.0, n_datasets)
        mse = difficulty[:, None] * (quality[None, :] + shift) * \
            rng.lognormal(0.0, 0.08, (n_datasets, n_entries))
        tables[track] = [{"entry": "baselines/mean" if e == 0 else f"team/model-{e:03d}",
                          "dataset": f"dataset-{d:02d}", "mse": float(mse[d, e]),
                          "pcc_gene": 0.3} for e in range(n_entries) for d in range(n_datasets)]
    return tables


def run(quick: bool) -> list[BenchRow]:
    """Time the uncertainty statistics (see module docstring)."""
    from scipy.stats import wilcoxon

    from evaluator.scoring import compute_metrics, compute_statistics
    from evaluator.scoring.uncertainty import (
        block_stats,
        dataset_bootstrap,
        job_interval,
        paired_tests,
        skill_scores,
        spatial_blocks,
        wilcoxon_pairs,
    )

    n_entries = 30 if quick else 100
    n_datasets = 26
    size = f"{n_entries} entries x {n_datasets} datasets"
    tables = _tables(n_entries, n_datasets)
    compute_statistics(tables["raw"][:60], reference_entry="baselines/mean")  # imports, warm-up
    matrices = {}
    for track, rows in tables.items():
        labels = sorted({str(r["entry"]) for r in rows})
        mse = np.array([[next(float(r["mse"]) for r in rows  # type: ignore[arg-type]
                              if r["entry"] == e and r["dataset"] == f"dataset-{d:02d}")
                         for e in labels] for d in range(n_datasets)])
        matrices[track] = (labels, mse)

    def uncertainty() -> None:
        for labels, mse in matrices.values():
            norm = mse / mse.min(axis=1, keepdims=True)
            skill = skill_scores(mse, mse[:, labels.index("baselines/mean")])
            dataset_bootstrap(norm, skill=skill, n_resamples=N_RESAMPLES)
            order = np.argsort(norm.mean(axis=0))
            paired_tests(mse[:, order], norm[:, order], [labels[i] for i in order])

    def classic() -> None:
        for rows in tables.values():
            compute_statistics(rows, uncertainty=False)

    def everything() -> None:
        for rows in tables.values():
            compute_statistics(rows, reference_entry="baselines/mean", n_resamples=N_RESAMPLES)

    repeat = 3
    unc_s, _ = time_call(uncertainty, repeat=repeat)
    classic_s, _ = time_call(classic, repeat=repeat)
    all_s, _ = time_call(everything, repeat=repeat)
    rows_out = [
        BenchRow("uncertainty", f"bootstrap+skill+Wilcoxon/Holm, 2 tracks ({size}, "
                 f"{N_RESAMPLES} resamples)", unc_s * 1e3, "ms", classic_s * 1e3,
                 "KW+Dunn+Friedman, same tables", "target < 500 ms"),
        BenchRow("uncertainty", f"compute_statistics, 2 tracks ({size})", all_s * 1e3, "ms",
                 classic_s * 1e3, "without uncertainty", "unseen view, uncached"),
    ]

    _, mse = matrices["raw"]
    first, second = np.triu_indices(mse.shape[1], 1)
    differences = (mse[:, first] - mse[:, second]).T
    vector_s, _ = time_call(lambda: wilcoxon_pairs(differences), repeat=repeat)
    sample = differences[:200]
    loop_s, _ = time_call(lambda: [wilcoxon(row) for row in sample], repeat=1)
    rows_out.append(BenchRow("uncertainty", f"Wilcoxon, {differences.shape[0]} pairs",
                             vector_s * 1e3, "ms", loop_s * differences.shape[0] / 200 * 1e3,
                             "scipy.stats.wilcoxon per pair (200 timed, scaled)"))

    rng = np.random.default_rng(1)
    n_spots, n_genes = (1500, 64) if quick else (3000, 128)
    truth = rng.normal(2.0, 1.0, (n_spots, n_genes)).astype(np.float32)
    pred = (truth + rng.normal(0.0, 0.5, truth.shape)).astype(np.float32)
    mask = rng.random(truth.shape) > 0.3
    slides = np.repeat(["slide-a", "slide-b"], n_spots // 2)
    array_row, array_col = rng.integers(0, 78, n_spots), rng.integers(0, 128, n_spots)

    def bootstrap() -> int:
        block, block_slide = spatial_blocks(slides, array_row, array_col)
        stats = block_stats(truth, pred, mask, block, block_slide)
        return job_interval(stats, n_resamples=N_RESAMPLES).n_blocks

    boot_s, n_blocks = time_call(bootstrap, repeat=repeat)
    metrics_s, _ = time_call(lambda: compute_metrics(truth, pred, mask),
                             repeat=repeat)
    rows_out.append(BenchRow("uncertainty", f"block bootstrap, one job ({n_spots} spots x "
                             f"{n_genes} genes, {n_blocks} blocks)", boot_s * 1e3, "ms",
                             metrics_s * 1e3, "compute_metrics once (numpy)"))
    return rows_out
