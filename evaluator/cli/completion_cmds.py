"""CLI commands of the completion layer: ``complete`` (run a method) and ``complete evaluate``.

``spared-bench complete --method median|spackle IN.h5ad OUT.h5ad`` completes a layer;
``spared-bench complete evaluate IN.h5ad`` runs the paper's protocol and prints the table.
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anndata as ad
import click
import torch

from evaluator.completion.config import SpackleConfig
from evaluator.completion.evaluation import (
    evaluate_completion,
    format_comparison,
    missing_fraction_sweep,
    plot_sweep,
    summaries_as_dicts,
    summarize,
)
from evaluator.completion.layers import DEFAULT_LAYERS, spot_data_from_anndata
from evaluator.completion.median import adaptive_median_filter
from evaluator.completion.spackle import TrainedSpackle, train_or_load, train_spackle
from evaluator.core.errors import InputFileError
from evaluator.core.fsio import atomic_path, atomic_write_json


class _CompleteGroup(click.Group):
    """A group that also runs as a command: ``complete --method ...`` means ``complete run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("complete", cls=_CompleteGroup)
def complete() -> None:
    """Complete missing expression values (median filter or SpaCKLE) and evaluate completion.

    \b
    spared-bench complete --method median|spackle IN.h5ad OUT.h5ad
    spared-bench complete evaluate IN.h5ad [--sweep]
    """


def _read(path: Path) -> ad.AnnData:
    if not path.is_file():
        raise InputFileError(path, "expected an .h5ad file, found nothing at this path")
    try:
        return ad.read_h5ad(path)
    except Exception as exc:
        raise InputFileError(path, f"expected a readable .h5ad file, found an error: "
                                   f"{type(exc).__name__}: {exc}") from exc


def _config(max_steps: int | None, n_neighbors: int | None, seed: int, device: str,
            loss_on: str | None) -> SpackleConfig:
    values: dict[str, Any] = {"seed": seed, "device": device}
    if max_steps is not None:
        values["max_steps"] = max_steps
    if n_neighbors is not None:
        values["n_neighbors"] = n_neighbors
    if loss_on is not None:
        values["loss_on"] = loss_on
    return SpackleConfig(**values)


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


_spackle_options = [
    click.option("--max-steps", type=click.IntRange(min=1), default=None,
                 help="Cap on SpaCKLE optimizer steps (default: 30 epochs within "
                      "200-400 steps; the paper uses 10,000)."),
    click.option("--n-neighbors", type=click.IntRange(0, 18), default=None,
                 help="Nearest 2-hop neighbours per spot (default 6)."),
    click.option("--loss-on", type=click.Choice(["all", "hidden"]), default=None,
                 help="Train on every entry (paper) or only on hidden ones."),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                 show_default=True, help="auto = CUDA when present."),
    click.option("--threads", type=click.IntRange(min=1), default=None,
                 help="torch CPU threads (default: torch's choice)."),
    click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Reuse/keep trained SpaCKLE models here, keyed by data and config."),
]


def _with_spackle_options(fn: Any) -> Any:
    for option in reversed(_spackle_options):
        fn = option(fn)
    return fn


@complete.command("run")
@click.option("--method", type=click.Choice(["median", "spackle"]), required=True,
              help="median: adaptive median filter; spackle: train SpaCKLE and complete.")
@click.argument("in_path", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--layer", default=None,
              help="Input layer (default: log1p for median, c_d_log1p for spackle).")
@click.option("--out-layer", default=None,
              help="Output layer (default: d_log1p for median, c_t_log1p for spackle).")
@click.option("--save-checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also save the trained SpaCKLE model here (.pt).")
@_with_spackle_options
def run_cmd(method: str, in_path: Path, out_path: Path, layer: str | None,
            out_layer: str | None, save_checkpoint: Path | None, max_steps: int | None,
            n_neighbors: int | None, loss_on: str | None, seed: int, device: str,
            threads: int | None, cache_dir: Path | None) -> None:
    """Complete the missing (mask-False) entries of IN.h5ad's layer and write OUT.h5ad."""
    _set_threads(threads)
    adata = _read(in_path)
    layer = layer or DEFAULT_LAYERS[method][0]
    out_layer = out_layer or DEFAULT_LAYERS[method][1]
    config = _config(max_steps, n_neighbors, seed, device, loss_on)
    data = spot_data_from_anndata(adata, layer, source=str(in_path))
    n_missing = int((~data.mask).sum())
    if method == "median":
        completed = adaptive_median_filter(data.expression, data.mask, data.array_row,
                                           data.array_col, data.slide_ids, n_hops=config.n_hops)
        note = "adaptive median filter"
    else:
        if cache_dir is not None:
            trained, hit, _ = train_or_load(data, config, cache_dir, progress=True)
        else:
            trained, hit = train_spackle(data, config, progress=True), False
        completed = trained.complete(data)
        note = (f"SpaCKLE ({'cached model' if hit else 'trained'}: best step "
                f"{trained.best_step}, validation MSE {trained.best_val_mse:.4f})")
        if save_checkpoint is not None:
            trained.save(save_checkpoint)
    adata.layers[out_layer] = completed
    with atomic_path(out_path) as tmp:
        adata.write_h5ad(tmp)
    click.echo(f"{out_path}: layers[{out_layer!r}] = {layer} with {n_missing} missing "
               f"entries of {data.mask.size} completed by {note}")


@complete.command("evaluate")
@click.argument("in_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--layer", default="c_d_log1p", show_default=True,
              help="Expression layer to hide values from and complete.")
@click.option("--rho", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.3,
              show_default=True, help="Fraction of measured values hidden per assay.")
@click.option("--assays", type=click.IntRange(min=1), default=10, show_default=True,
              help="Random masks to average over (paper: 10).")
@click.option("--sweep", is_flag=True,
              help="Also sweep the missing fraction from 10% to 70% (paper Fig. 4).")
@click.option("--median-only", is_flag=True, help="Evaluate the median filter alone.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Use this trained SpaCKLE model instead of training one.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write per-assay scores and summaries as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the sweep plot (PNG); implies --sweep.")
@_with_spackle_options
def evaluate_cmd(in_path: Path, layer: str, rho: float, assays: int, sweep: bool,
                 median_only: bool, checkpoint: Path | None, json_path: Path | None,
                 plot_path: Path | None, max_steps: int | None, n_neighbors: int | None,
                 loss_on: str | None, seed: int, device: str, threads: int | None,
                 cache_dir: Path | None) -> None:
    """Hide measured values at random, complete them, score MSE/PCC on the hidden entries.

    SpaCKLE trains on the train spots (val picks the best model); values are hidden and scored
    on the hidden split (test, else val), with every spot kept as context. Both methods see
    the same masks; the table gives mean ± std over assays.
    """
    _set_threads(threads)
    sweep = sweep or plot_path is not None
    adata = _read(in_path)
    data = spot_data_from_anndata(adata, layer, source=str(in_path))
    config = _config(max_steps, n_neighbors, seed, device, loss_on)
    trained = None
    if not median_only:
        if checkpoint is not None:
            trained = TrainedSpackle.load(checkpoint, device=device)
        elif cache_dir is not None:
            trained, _, _ = train_or_load(data, config, cache_dir, progress=True)
        else:
            trained = train_spackle(data, config, progress=True)
        click.echo(f"SpaCKLE: best step {trained.best_step}, validation MSE "
                   f"{trained.best_val_mse:.4f}, trained in {trained.train_seconds:.1f} s")
    scores = evaluate_completion(data, trained, rho=rho, n_assays=assays, seed=seed,
                                 n_hops=config.n_hops)
    sweep_scores = (missing_fraction_sweep(data, trained, n_assays=assays, seed=seed + 1)
                    if sweep else [])
    summaries, sweep_summaries = summarize(scores), summarize(sweep_scores)
    click.echo(f"{in_path.name}: layer {layer}, {data.n_spots} spots, {data.n_genes} genes; "
               f"scores on hidden measured entries, mean ± std over {assays} assay(s)")
    click.echo(format_comparison(summaries))
    if sweep:
        click.echo("\nmissing-fraction sweep (paper Fig. 4):")
        click.echo(format_comparison(sweep_summaries))
    if json_path is not None:
        atomic_write_json(json_path, {
            "input": str(in_path), "layer": layer, "config": config.model_dump(),
            "summary": summaries_as_dicts(summaries),
            "sweep": summaries_as_dicts(sweep_summaries),
            "assays": [asdict(s) for s in [*scores, *sweep_scores]],
        })
    if plot_path is not None:
        plot_sweep(sweep_summaries, plot_path)
        click.echo(f"plot written to {plot_path}", err=True)
    sys.stdout.flush()


COMMANDS: list[click.Command] = [complete]
"""This module\'s commands (``evaluator.cli.app`` registers them)."""
