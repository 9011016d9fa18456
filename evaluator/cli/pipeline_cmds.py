"""CLI commands of the processing pipeline, in the ``data`` group: ``process``, ``update`` and
``synth-raw``.

``data update`` is where the pipeline meets the orchestrator: the datasets package builds the
release and its changelog, and this module publishes it (``evaluator.orchestrator
.publish_release``), which makes it current and queues every baseline on it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, cast

import click

from evaluator.core.settings import Settings
from evaluator.datasets.pipeline import StepRecord, process_file
from evaluator.datasets.pipeline.update import build_update_release, raw_dir, update_datasets
from evaluator.datasets.registry import get_dataset
from evaluator.datasets.release import completion_from_settings
from evaluator.datasets.synthetic import SizeName
from evaluator.datasets.synthetic_raw import generate_raw
from evaluator.orchestrator import Bench, publish_release
from evaluator.store import current_release, session_scope


def _step_line(dataset: str, record: StepRecord) -> str:
    spots = (f"{record.spots_in:,}" if record.spots_in == record.spots_out
             else f"{record.spots_in:,} -> {record.spots_out:,}")
    genes = (f"{record.genes_in:,}" if record.genes_in == record.genes_out
             else f"{record.genes_in:,} -> {record.genes_out:,}")
    return (f"  {dataset}: {record.name:<16} spots {spots}, genes {genes}, missing "
            f"{100 * record.missing_before:.1f}% -> {100 * record.missing_after:.1f}% "
            f"({record.seconds:.2f}s)")


@click.command("process")
@click.argument("raw", type=click.Path(path_type=Path))
@click.option("--dataset", required=True, help="Registry name or abbreviation of the dataset.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="Pipeline configuration (.json/.toml) [default: SpaRED's own configuration "
                   "of the dataset].")
@click.option("--mode", type=click.Choice(["spared", "exact-hex"]), default=None,
              help="spared: as SpaRED's library (kNN graph, pyComBat); exact-hex: hexagonal "
                   "rings and scanpy's ComBat [default: the config's, spared].")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Output .h5ad [default: the store's processed folder].")
@click.option("--json", "as_json", is_flag=True, help="Print the step report as JSON.")
def process_command(raw: Path, dataset: str, config_path: Path | None, mode: str | None,
                    out_path: Path | None, as_json: bool) -> None:
    """Process RAW counts into a SpaRED dataset: filters, TPM, log2, median filter, Moran's I,
    top genes, ComBat, deltas, mask, SpaCKLE.

    RAW is an .h5ad of raw counts (obs slide_id, patient, split, array_row, array_col;
    obsm spatial and patches_scale_1.0; var gene_length) or a sources .json listing Space
    Ranger folders (one per slide) with a gene-length table.
    """
    settings = Settings.from_env()
    info = get_dataset(dataset)
    target = out_path or settings.processed_dir / f"{info.name}.h5ad"
    click.echo(f"processing {raw} as {info.name} ...", err=True)
    progress = settings.show_progress()
    # With progress bars the steps show in the bar; without, one line each as they finish.
    report = process_file(raw, info.name, target, cache_dir=settings.cache_dir,
                          config_path=config_path, mode=mode, progress=progress,
                          completion=completion_from_settings(settings),
                          on_step=None if progress else
                          lambda r: click.echo(_step_line(info.name, r), err=True))
    if as_json:
        click.echo(report.model_dump_json(indent=2))
        return
    click.echo(report.table())
    click.echo(f"wrote {target}")


def _current_release_id(bench: Bench) -> str | None:
    with session_scope(bench.engine) as session:
        record = current_release(session)
        return record.release_id if record else None


@click.command("update")
@click.option("--dataset", "names", multiple=True,
              help="Only these datasets (repeatable) [default: every registered raw input].")
@click.option("--force", is_flag=True, help="Re-process even unchanged datasets.")
@click.option("--label", default=None, help="Label of the new release, e.g. 2026-11.")
@click.option("--no-publish", is_flag=True,
              help="Build the release and its changelog but do not publish it.")
@click.option("--no-baselines", is_flag=True, help="Publish without queuing the baselines.")
@click.option("--json", "as_json", is_flag=True, help="Print what happened as JSON.")
def update_command(names: tuple[str, ...], force: bool, label: str | None, no_publish: bool,
                   no_baselines: bool, as_json: bool) -> None:
    """Re-process the raw inputs that changed, release, publish and re-evaluate the baselines.

    Raw inputs are registered in $SPARED_BENCH_HOME/raw as <dataset>.h5ad or
    <dataset>.sources.json, with an optional <dataset>.config.json; a dataset whose input and
    configuration are unchanged since it was last processed is reused, not recomputed. The
    release holds every processed dataset of the store, as `data release` does.
    """
    settings = Settings.from_env()
    start = time.perf_counter()
    progress = settings.show_progress()
    updates = update_datasets(
        settings, datasets=list(names) or None, force=force, progress=progress,
        on_event=lambda msg: click.echo(msg, err=True),
        on_step=None if progress else
        lambda name, record: click.echo(_step_line(name, record), err=True))
    bench = None if no_publish else _bench(settings)
    previous = _current_release_id(bench) if bench is not None else None
    release, created, log, log_path = build_update_release(
        settings, previous_release_id=previous, label=label,
        on_progress=lambda msg: click.echo(f"  {msg}", err=True))
    published: dict[str, Any] | None = None
    if bench is not None:
        report = publish_release(bench, release.release_id, queue_baselines=not no_baselines)
        published = report.model_dump(mode="json")
    if as_json:
        click.echo(json.dumps({
            "datasets": [u.model_dump(mode="json") for u in updates],
            "release_id": release.release_id, "release_created": created,
            "changelog": log.model_dump(mode="json"), "changelog_path": str(log_path),
            "published": published}, indent=2))
        return
    processed = [u.dataset for u in updates if u.action == "processed"]
    reused = [u.dataset for u in updates if u.action == "reused"]
    click.echo(f"processed {len(processed)} dataset(s)"
               + (f" ({', '.join(processed)})" if processed else "")
               + f", reused {len(reused)}")
    verb = "built" if created else "already had"
    click.echo(f"{verb} release {release.release_id} in {time.perf_counter() - start:.1f}s")
    click.echo(log.text())
    click.echo(f"changelog: {log_path}")
    if published is not None:
        before = published["previous_release_id"]
        click.echo(f"published {release.release_id[:12]} as current"
                   + (f" (was {before[:12]})" if before and before != release.release_id
                      else ""))
        for entry, count in published["jobs_queued"].items():
            click.echo(f"  queued {count} job(s) of baseline {entry}")


def _bench(settings: Settings) -> Bench:
    return Bench.open(settings)


@click.command("synth-raw")
@click.option("--size", type=click.Choice(["tiny", "demo", "full"]), default="tiny",
              show_default=True, help="tiny: tests; demo: a handful of datasets; full: all 26.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Output folder [default: $SPARED_BENCH_HOME/raw, where "
                                 "`data update` looks].")
@click.option("--seed", type=int, default=None, help="Random seed [default: SPARED_BENCH_SEED].")
@click.option("--datasets", "names", default=None,
              help="Comma-separated dataset names or abbreviations [default: the size's list].")
@click.option("--patch-size", type=click.IntRange(4, 512), default=None,
              help="Patch side in pixels [default: 8 tiny, 16 demo, 32 full].")
def synth_raw_command(size: str, out_dir: Path | None, seed: int | None, names: str | None,
                      patch_size: int | None) -> None:
    """Generate synthetic raw counts (before filtering), the input of `data process`/`update`."""
    settings = Settings.from_env()
    target = out_dir or raw_dir(settings)
    chosen = [get_dataset(n.strip()).name for n in names.split(",") if n.strip()] if names \
        else None
    start = time.perf_counter()

    def report(name: str, path: Path) -> None:
        click.echo(f"  wrote {path} ({path.stat().st_size / 1e6:.1f} MB, "
                   f"{time.perf_counter() - start:.1f}s)", err=True)

    paths = generate_raw(cast(SizeName, size), target,
                         seed=settings.seed if seed is None else seed, datasets=chosen,
                         patch_size=patch_size, on_dataset=report)
    click.echo(f"{len(paths)} raw dataset(s) in {target}")


COMMANDS: list[click.Command] = [process_command, update_command, synth_raw_command]
"""This module's commands, in the ``data`` group (``evaluator.cli.app`` registers them)."""
