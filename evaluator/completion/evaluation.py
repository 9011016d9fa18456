"""The completion evaluation protocol of the SpaCKLE paper (section 4 and 5.1, Fig. 4).

Hide a fraction ``rho`` of the *measured* values of the evaluated spots with a random mask,
complete them with each method from the same masked data, and score MSE and PCC on the hidden
entries only (they are real measurements, so real ground truth). Repeat over ``n_assays``
random masks (paper: 10) and average. The sweep repeats this for missing fractions of 10% to 70%
(Fig. 4, middle left).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import IO, Literal

import numpy as np

from evaluator.completion.errors import CompletionInputError
from evaluator.completion.median import adaptive_median_filter
from evaluator.completion.spackle import SpotData, TrainedSpackle
from evaluator.core.splits import hidden_mask

Method = Literal["median", "spackle"]
FIG4_FRACTIONS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True)
class AssayScore:
    """Scores of one method on the entries hidden by one random mask."""

    method: str
    rho: float
    assay: int
    mse: float
    pcc: float
    n_hidden: int


@dataclass(frozen=True)
class MethodSummary:
    """Mean (and std) over assays of one method at one missing fraction."""

    method: str
    rho: float
    n_assays: int
    mse_mean: float
    mse_std: float
    pcc_mean: float
    pcc_std: float


def hidden_split_spots(data: SpotData) -> np.ndarray:
    """Return a bool array of the spots to evaluate on: ``test``, else ``val``, else all."""
    if data.split is None:
        return np.ones(data.n_spots, dtype=bool)
    spots = hidden_mask(data.split)
    return spots if spots.any() else np.ones(data.n_spots, dtype=bool)


def random_hidden_mask(mask: np.ndarray, spots: np.ndarray, rho: float,
                       rng: np.random.Generator) -> np.ndarray:
    """Return a bool mask hiding exactly ``round(rho * m)`` of the ``m`` measured entries of
    ``spots``, drawn uniformly without replacement. Never hides a missing entry."""
    if not 0.0 < rho < 1.0:
        raise CompletionInputError(f"rho: expected a fraction in (0, 1), found {rho}")
    candidates = np.flatnonzero((mask & spots[:, None]).ravel())
    n_hide = round(rho * candidates.size)
    hidden = np.zeros(mask.size, dtype=bool)
    hidden[rng.choice(candidates, size=n_hide, replace=False)] = True
    return hidden.reshape(mask.shape)


def masked_pcc(truth: np.ndarray, pred: np.ndarray, hidden: np.ndarray) -> float:
    """Return the mean over genes of Pearson r between truth and prediction on hidden entries.

    Genes with fewer than 2 hidden entries or a constant truth are skipped; a constant
    prediction has no defined r and counts as 0 (as in the benchmark's scoring).
    """
    values = []
    for j in range(truth.shape[1]):
        rows = hidden[:, j]
        if rows.sum() < 2:
            continue
        t = truth[rows, j].astype(np.float64)
        p = pred[rows, j].astype(np.float64)
        if np.ptp(t) == 0:
            continue
        if np.ptp(p) == 0:
            values.append(0.0)
            continue
        values.append(float(np.corrcoef(t, p)[0, 1]))
    return float(np.mean(values)) if values else float("nan")


def evaluate_completion(
    data: SpotData,
    spackle: TrainedSpackle | None,
    *,
    rho: float = 0.3,
    n_assays: int = 10,
    seed: int = 0,
    spots: np.ndarray | None = None,
    n_hops: int = 4,
) -> list[AssayScore]:
    """Score the median filter (and SpaCKLE when given) on ``n_assays`` random masks.

    ``spots`` (bool) selects the spots whose measured values may be hidden and are scored
    (default: ``hidden_split_spots``); every spot stays in the data as context. Both methods
    see the same masked data in each assay; SpaCKLE starts from that assay's median completion.
    """
    spots = hidden_split_spots(data) if spots is None else np.asarray(spots, dtype=bool)
    if not (data.mask & spots[:, None]).any():
        raise CompletionInputError(
            "mask: expected measured values on the evaluated spots, found none"
        )
    truth = np.asarray(data.expression, dtype=np.float32)
    rng = np.random.default_rng(seed)
    scores: list[AssayScore] = []
    for assay in range(n_assays):
        hidden = random_hidden_mask(data.mask, spots, rho, rng)
        masked = data.with_mask(data.mask & ~hidden)
        median = adaptive_median_filter(masked.expression, masked.mask, masked.array_row,
                                         masked.array_col, masked.slide_ids, n_hops=n_hops)
        predictions: list[tuple[str, np.ndarray]] = [("median", median)]
        if spackle is not None:
            predictions.append(("spackle", spackle.complete(masked, pre_completed=median)))
        for method, pred in predictions:
            err = pred[hidden].astype(np.float64) - truth[hidden]
            scores.append(AssayScore(method=method, rho=rho, assay=assay,
                                     mse=float(np.mean(err**2)),
                                     pcc=masked_pcc(truth, pred, hidden),
                                     n_hidden=int(hidden.sum())))
    return scores


def missing_fraction_sweep(
    data: SpotData,
    spackle: TrainedSpackle | None,
    *,
    fractions: Sequence[float] = FIG4_FRACTIONS,
    n_assays: int = 10,
    seed: int = 0,
    spots: np.ndarray | None = None,
) -> list[AssayScore]:
    """Run ``evaluate_completion`` at each missing fraction (Fig. 4 of the paper)."""
    scores: list[AssayScore] = []
    for i, rho in enumerate(fractions):
        scores += evaluate_completion(data, spackle, rho=rho, n_assays=n_assays,
                                      seed=seed + 1000 * i, spots=spots)
    return scores


def summarize(scores: Sequence[AssayScore]) -> list[MethodSummary]:
    """Average assay scores per (missing fraction, method), in the order they first appear."""
    keys: list[tuple[float, str]] = []
    for s in scores:
        if (s.rho, s.method) not in keys:
            keys.append((s.rho, s.method))
    out = []
    for rho, method in keys:
        group = [s for s in scores if s.rho == rho and s.method == method]
        mse = np.array([s.mse for s in group])
        pcc = np.array([s.pcc for s in group])
        out.append(MethodSummary(method=method, rho=rho, n_assays=len(group),
                                 mse_mean=float(mse.mean()), mse_std=float(mse.std()),
                                 pcc_mean=float(np.nanmean(pcc)) if np.isfinite(pcc).any()
                                 else float("nan"),
                                 pcc_std=float(np.nanstd(pcc)) if np.isfinite(pcc).any()
                                 else float("nan")))
    return out


def format_comparison(summaries: Sequence[MethodSummary]) -> str:
    """Render summaries as a table: one row per missing fraction, both methods side by side."""
    by_rho: dict[float, dict[str, MethodSummary]] = {}
    for s in summaries:
        by_rho.setdefault(s.rho, {})[s.method] = s
    header = ["missing", "assays", "MSE median", "MSE SpaCKLE", "MSE reduction",
              "PCC median", "PCC SpaCKLE"]
    rows = []
    for rho, methods in by_rho.items():
        med, spk = methods.get("median"), methods.get("spackle")

        def cell(s: MethodSummary | None, attr: str) -> str:
            if s is None:
                return "-"
            mean, std = getattr(s, f"{attr}_mean"), getattr(s, f"{attr}_std")
            return f"{mean:.4f} ± {std:.4f}"

        reduction = (f"{100.0 * (1.0 - spk.mse_mean / med.mse_mean):.1f}%"
                     if med is not None and spk is not None and med.mse_mean > 0 else "-")
        either = med or spk
        n = either.n_assays if either is not None else 0
        rows.append([f"{100 * rho:.0f}%", str(n), cell(med, "mse"), cell(spk, "mse"), reduction,
                     cell(med, "pcc"), cell(spk, "pcc")])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, ["-" * w for w in widths], *rows]]
    return "\n".join(lines)


def summaries_as_dicts(summaries: Sequence[MethodSummary]) -> list[dict[str, object]]:
    """Return summaries as plain dicts (for JSON output)."""
    return [asdict(s) for s in summaries]


def plot_sweep(summaries: Sequence[MethodSummary], path: str | os.PathLike[str] | IO[bytes],
               title: str = "Completion MSE vs missing fraction") -> None:
    """Write a PNG line plot of MSE (mean ± std over assays) per method vs missing fraction."""
    # why here: matplotlib (science extra) only for this plot; the Agg backend is set before pyplot
    # loads
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.6), dpi=120)
    colors = {"median": "tab:red", "spackle": "tab:blue"}
    labels = {"median": "Median filter", "spackle": "SpaCKLE"}
    for method in ("median", "spackle"):
        rows = sorted((s for s in summaries if s.method == method), key=lambda s: s.rho)
        if not rows:
            continue
        x = [100 * s.rho for s in rows]
        y = np.array([s.mse_mean for s in rows])
        err = np.array([s.mse_std for s in rows])
        ax.plot(x, y, marker="o", color=colors[method], label=labels[method])
        ax.fill_between(x, y - err, y + err, color=colors[method], alpha=0.2)
    ax.set_xlabel("synthetically masked values (%)")
    ax.set_ylabel("completion MSE")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
