"""CLI commands of the scoring layer: ``score`` and ``stats``."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pandas as pd

from evaluator.core.errors import InputFileError
from evaluator.core.fsio import atomic_write_bytes
from evaluator.core.vocabulary import TRACKS
from evaluator.scoring import (
    DEFAULT_ALPHA,
    JobScore,
    MetricSet,
    StatisticsReport,
    compute_metrics_detailed,
    compute_statistics,
    load_predictions,
    load_truth,
    report_cd_svg,
    score_predictions,
)
from evaluator.scoring.errors import ResultsTableError


def _fmt(value: float | None, digits: int = 4) -> str:
    """Format a metric, 'n/a' for None."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def _metric_lines(metrics: MetricSet, label: str) -> list[str]:
    """Human-readable lines of one metric set."""
    lines = [
        f"{label}:",
        f"  MSE        {_fmt(metrics.mse)}",
        f"  MAE        {_fmt(metrics.mae)}",
        f"  PCC-Gene   {_fmt(metrics.pcc_gene)}",
        f"  PCC-Patch  {_fmt(metrics.pcc_patch)}",
        f"  R2-Gene    {_fmt(metrics.r2_gene)}",
        f"  R2-Patch   {_fmt(metrics.r2_patch)}",
    ]
    notes = [
        f"{metrics.constant_genes} gene(s) predicted as a constant (PCC 0)"
        if metrics.constant_genes else "",
        f"{metrics.constant_truth_genes} gene(s) with constant truth (PCC 0, R2 skipped)"
        if metrics.constant_truth_genes else "",
        f"{metrics.unmeasured_genes} gene(s) with no measured spot (skipped)"
        if metrics.unmeasured_genes else "",
        f"{metrics.constant_spots} spot(s) predicted as a constant (PCC 0)"
        if metrics.constant_spots else "",
    ]
    lines += [f"  note: {n}" for n in notes if n]
    return lines


def _score_text(score: JobScore) -> str:
    """Render a job score for a terminal."""
    p = score.provenance
    lines = [
        f"dataset {p.dataset}  track {p.track}  release {p.release_id}  "
        f"scorer {p.scorer_version}",
        f"spots {score.n_spots}  genes {score.n_genes}  measured entries {score.n_measured}",
        *_metric_lines(score.metrics, "measured entries (the score)"),
    ]
    if score.completed_metrics is not None:
        lines += _metric_lines(
            score.completed_metrics, "all entries vs SpaCKLE-completed truth (not ranked)"
        )
    return "\n".join(lines)


@click.command("score")
@click.option("--truth", "truth_path", required=True, type=click.Path(path_type=Path),
              help="Processed dataset .h5ad (hidden split used), a release's "
                   "hidden/<dataset>/truth.h5ad, or an .npz with arrays truth and mask "
                   "(and completed for the spackle track).")
@click.option("--pred", "pred_path", required=True, type=click.Path(path_type=Path),
              help="predictions.npy: float32, (n_test_spots, n_genes), all finite.")
@click.option("--track", type=click.Choice(TRACKS), default="raw", show_default=True)
@click.option("--release-id", default=None, help="Release id for the provenance "
              "(default: the release's manifest, else 'local').")
@click.option("--per-gene", "per_gene_csv", type=click.Path(path_type=Path), default=None,
              help="Also write per-gene n, PCC, R2, MSE, MAE to this CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def score_cmd(
    truth_path: Path, pred_path: Path, track: str, release_id: str | None,
    per_gene_csv: Path | None, as_json: bool,
) -> None:
    """Score a predictions file against the hidden truth of one dataset and track."""
    truth = load_truth(truth_path, track="spackle" if track == "spackle" else "raw")
    result = score_predictions(truth, pred_path, release_id=release_id)
    if per_gene_csv is not None:
        pred = load_predictions(pred_path, expected_shape=truth.shape)
        detail = compute_metrics_detailed(truth.truth, pred, truth.mask)
        genes = truth.genes or [str(j) for j in range(truth.shape[1])]
        rows = ["gene,n,pcc,r2,mse,mae"]
        for j, gene in enumerate(genes):
            rows.append(",".join([
                gene, str(int(detail.gene_n[j])),
                *(repr(float(a[j])) for a in (detail.gene_pcc, detail.gene_r2,
                                               detail.gene_mse, detail.gene_mae)),
            ]))
        atomic_write_bytes(per_gene_csv, ("\n".join(rows) + "\n").encode())
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        click.echo(_score_text(result))


def _stats_text(report: StatisticsReport) -> str:
    """Render a statistics report for a terminal."""
    lines = [f"{len(report.datasets)} datasets, alpha = {report.alpha:g}"]
    ranked = report.ranked()
    if ranked:
        width = max(len(e.entry) for e in ranked)
        lines.append(f"{'rank':>4}  {'group':>5}  {'entry':<{width}}  "
                     "norm. MSE (mean±std)  mean PCC-Gene  won")
        for e in ranked:
            group = "-" if e.group is None else str(e.group)
            lines.append(
                f"{e.rank:>4}  {group:>5}  {e.entry:<{width}}  "
                f"{_fmt(e.mean_normalized_mse, 3):>9}±{_fmt(e.std_normalized_mse, 3):<10}  "
                f"{_fmt(e.mean_pcc_gene):>13}  {e.datasets_won:>3}"
            )
    for e in report.entries:
        if not e.complete:
            lines.append(f"incomplete (not ranked): {e.entry}: {e.incomplete_reason}")
    if report.test_status == "not_enough":
        lines.append(f"tests: not enough to test ({report.test_reason})")
    if report.kruskal is not None:
        k = report.kruskal
        lines.append(f"Kruskal-Wallis H = {k.statistic:.4g}, p = {k.p_value:.4g}"
                     f"{' (significant)' if k.significant else ' (not significant)'}")
    if report.dunn is not None:
        labels = report.dunn.labels
        lines.append("Dunn (Bonferroni) p-values, * = significant:")
        for i, a in enumerate(labels):
            cells = []
            for j in range(len(labels)):
                if j <= i:
                    cells.append("-")
                else:
                    p = report.dunn.p_values[i][j]
                    cells.append(f"{p:.3g}{'*' if p < report.alpha else ''}")
            lines.append(f"  {a}: " + "  ".join(cells))
    if report.friedman is not None:
        f = report.friedman
        lines.append(f"Friedman chi2 = {f.statistic:.4g}, p = {f.p_value:.4g}; "
                     f"Nemenyi CD = {f.critical_difference:.3f} (q = {f.q_alpha:.3f})")
    elif report.friedman_reason:
        lines.append(f"Friedman: skipped ({report.friedman_reason})")
    return "\n".join(lines)


@click.command("stats")
@click.argument("results_csv", type=click.Path(path_type=Path))
@click.option("--alpha", type=float, default=DEFAULT_ALPHA, show_default=True)
@click.option("--datasets", default=None,
              help="Comma-separated datasets every entry must have (default: all in the table).")
@click.option("--track", default=None, help="Keep only rows of this track (column 'track').")
@click.option("--cd-svg", "cd_svg", type=click.Path(path_type=Path), default=None,
              help="Write the critical-difference diagram to this SVG file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def stats_cmd(
    results_csv: Path, alpha: float, datasets: str | None, track: str | None,
    cd_svg: Path | None, as_json: bool,
) -> None:
    """Rank entries and test their differences from a long results table (entry, dataset, mse)."""
    if not results_csv.is_file():
        raise InputFileError(results_csv, "expected an existing CSV file, found no such file")
    try:
        frame = pd.read_csv(results_csv)
    except (ValueError, OSError) as exc:
        raise InputFileError(results_csv, f"expected a readable CSV table, found {exc}") from exc
    if "track" in frame.columns:
        tracks = sorted(set(frame["track"].astype(str)))
        if track is not None:
            frame = frame[frame["track"].astype(str) == track]
        elif len(tracks) > 1:
            raise ResultsTableError(
                str(results_csv), "one track (choose with --track)", f"tracks {tracks}"
            )
    dataset_list = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None
    report = compute_statistics(
        frame, datasets=dataset_list, alpha=alpha, track=track, source=str(results_csv)
    )
    if cd_svg is not None:
        svg = report_cd_svg(report)
        if svg is None:
            click.echo(f"no CD diagram: {report.friedman_reason}", err=True)
        else:
            atomic_write_bytes(cd_svg, svg.encode())
    if as_json:
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        click.echo(_stats_text(report))


COMMANDS: list[click.Command] = [score_cmd, stats_cmd]
"""This module\'s commands (``evaluator.cli.app`` registers them)."""
