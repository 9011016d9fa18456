"""CLI commands of the datasets layer: ``datasets`` and, in the ``data`` group, ``synth``,
``import``, ``validate``, ``release``, ``releases`` and ``show``."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import click

from evaluator.core.errors import BenchError, DatasetNotFound
from evaluator.core.settings import Settings
from evaluator.core.text import escape_controls
from evaluator.datasets.patches import check_processed_file
from evaluator.datasets.registry import get_dataset, load_registry, split_table_source
from evaluator.datasets.release import (
    ReleaseManifest,
    build_release,
    completion_from_settings,
    list_releases,
    load_release,
)
from evaluator.datasets.store import import_processed
from evaluator.datasets.synthetic import SizeName, generate

_REGISTRY_COLUMNS = (
    ("name", "name"), ("abbr", "abbreviation"), ("organism", "organism"), ("tissue", "tissue"),
    ("generalization", "generalization"), ("genes", "genes"), ("combat", "combat_key"),
    ("slides", "slides"), ("patients", "patients"), ("spots", "spots"),
    ("miss%", "missing_after_pct"), ("hidden", "hidden_split"),
)


def format_rows(header: list[str], rows: Sequence[Sequence[object]]) -> str:
    """Render a plain fixed-width table (control characters in cells shown escaped)."""
    cells = [[escape_controls(str(c)) for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@click.command("datasets")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--splits", "show_splits", is_flag=True,
              help="List the slide ids of each split (SpaRED's split table) per dataset.")
def datasets_command(as_json: bool, show_splits: bool) -> None:
    """List the 26 SpaRED datasets of the registry, with the slides of each split.

    The table shows the number of slides per split (train/val/test); --splits lists their ids,
    as SpaRED's readers define them. The hidden split is test where there is one, else val.
    """
    registry = load_registry()
    records = [{**d.model_dump(), "has_test_split": d.has_test_split,
                "hidden_split": d.hidden_split} for d in registry]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if show_splits:
        for d in registry:
            click.echo(f"{d.name} (hidden: {d.hidden_split})")
            for split in ("train", "val", "test"):
                slides = getattr(d.splits, split)
                click.echo(f"  {split:<5} {', '.join(slides) if slides else '-'}")
        click.echo(f"\nsource: {split_table_source()}")
        return
    rows = [[r[key] for _, key in _REGISTRY_COLUMNS]
            + ["/".join(str(len(getattr(d.splits, s))) for s in ("train", "val", "test"))]
            for r, d in zip(records, registry, strict=True)]
    click.echo(format_rows([h for h, _ in _REGISTRY_COLUMNS] + ["train/val/test"], rows))
    click.echo(f"\n{len(registry)} datasets, {sum(d.slides for d in registry)} slides, "
               f"{sum(d.spots for d in registry):,} spots; slide ids per split: "
               "`spared-bench datasets --splits`")


@click.command("synth")
@click.option("--size", type=click.Choice(["tiny", "demo", "full"]), default="tiny",
              show_default=True, help="tiny: tests; demo: a handful of datasets; full: all 26.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Output folder [default: the store's processed folder].")
@click.option("--seed", type=int, default=None, help="Random seed [default: SPARED_BENCH_SEED].")
@click.option("--datasets", "names", default=None,
              help="Comma-separated dataset names or abbreviations [default: the size's list].")
@click.option("--patch-size", type=click.IntRange(4, 512), default=None,
              help="Patch side in pixels [default: 8 tiny, 16 demo, 32 full; SpaRED: 224].")
@click.option("--max-spots", type=click.IntRange(1), default=None,
              help="Spots per dataset at most [default: 320 tiny, 900 demo, all full].")
def synth_command(size: str, out_dir: Path | None, seed: int | None, names: str | None,
                  patch_size: int | None, max_spots: int | None) -> None:
    """Generate SpaRED-like synthetic processed datasets (deterministic by seed).

    Patches are drawn and written in chunks, so memory does not grow with the data: the
    26 datasets at SpaRED's 224 px (--size full --patch-size 224) need about 46 GB of disk.
    """
    settings = Settings.from_env()
    target = out_dir or settings.processed_dir
    chosen = [n.strip() for n in names.split(",") if n.strip()] if names else None
    if chosen:
        for name in chosen:
            get_dataset(name)
    start = time.perf_counter()

    def report(name: str, path: Path) -> None:
        click.echo(f"  wrote {path} ({path.stat().st_size / 1e6:.1f} MB, "
                   f"{time.perf_counter() - start:.1f}s)", err=True)

    click.echo(f"synthesizing '{size}' data into {target} ...", err=True)
    paths = generate(cast(SizeName, size), target,
                     seed=settings.seed if seed is None else seed, datasets=chosen,
                     patch_size=patch_size, max_spots=max_spots, on_dataset=report)
    click.echo(f"{len(paths)} dataset(s) in {target}")


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--dataset", required=True, help="Registry name or abbreviation of the dataset.")
@click.option("--allow-other-splits", is_flag=True,
              help="Accept slides and splits other than SpaRED's split table (data that are "
                   "not SpaRED's); the hidden split is then test if present, else val.")
def import_command(file: Path, dataset: str, allow_other_splits: bool) -> None:
    """Validate a SpaRED-processed .h5ad and add it, unchanged, to the store.

    Its obs['slide_id'] and obs['split'] must match SpaRED's split table (`spared-bench
    datasets --splits`), unless --allow-other-splits.
    """
    target = import_processed(file, dataset, Settings.from_env().processed_dir,
                              other_splits=allow_other_splits)
    click.echo(f"imported {file} as {target}")


@click.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--dataset", default=None,
              help="Check the gene count against this dataset [default: from the file name].")
def validate_command(files: tuple[Path, ...], dataset: str | None) -> None:
    """Check processed .h5ad files against the SpaRED dataset schema."""
    failures = 0
    for file in files:
        try:
            genes = None
            try:
                genes = get_dataset(dataset or file.stem).genes
            except DatasetNotFound:
                if dataset:
                    raise
            check_processed_file(file, expected_genes=genes)
            click.echo(f"ok    {file}")
        except BenchError as exc:
            failures += 1
            click.echo(f"FAIL  {exc}", err=True)
    if failures:
        raise click.exceptions.Exit(1)


@click.command("release")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--label", default=None, help="A human label for the release, e.g. 2026-11.")
def release_command(files: tuple[Path, ...], label: str | None) -> None:
    """Build an immutable release from processed files [default: every file in the store]."""
    settings = Settings.from_env()
    sources = list(files) or sorted(settings.processed_dir.glob("*.h5ad"))
    if not sources:
        raise click.ClickException(
            f"no processed datasets: expected .h5ad files in {settings.processed_dir}, found "
            "none (run `spared-bench data synth` or `spared-bench data import` first)")
    start = time.perf_counter()
    release, created = build_release(
        sources, settings.releases_dir, label=label, cache_dir=settings.cache_dir,
        completion=completion_from_settings(settings),
        progress=settings.show_progress(),
        on_progress=lambda msg: click.echo(f"  {msg}", err=True))
    verb = "built" if created else "already had"
    click.echo(f"{verb} release {release.release_id} in {time.perf_counter() - start:.1f}s")
    _print_release(release.manifest)


@click.command("releases")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def releases_command(as_json: bool) -> None:
    """List the releases in the store."""
    manifests = list_releases(Settings.from_env().releases_dir)
    if as_json:
        click.echo(json.dumps([m.model_dump(mode="json", exclude={"files"}) for m in manifests],
                              indent=2))
        return
    rows = [[m.release_id[:12], m.label or "", m.created_utc.strftime("%Y-%m-%d %H:%M:%SZ"),
             len(m.datasets), sum(d.n_hidden_spots for d in m.datasets.values())]
            for m in manifests]
    click.echo(format_rows(["release", "label", "created (UTC)", "datasets", "hidden spots"],
                           rows) if rows else "no releases yet")


@click.command("show")
@click.argument("release_ref")
@click.option("--no-verify", is_flag=True, help="Skip the integrity check of every file.")
def show_command(release_ref: str, no_verify: bool) -> None:
    """Show one release (id, id prefix or label) after verifying its files."""
    release = load_release(release_ref, Settings.from_env().releases_dir, verify=not no_verify)
    click.echo(f"release {release.release_id}" + ("" if no_verify else " (verified)"))
    _print_release(release.manifest)


def _print_release(manifest: ReleaseManifest) -> None:
    rows = [[d.name, ",".join(d.tracks), d.hidden_split, d.n_public_spots, d.n_hidden_spots,
             len(d.genes), "x".join(str(v) for v in d.patch_shape)]
            for d in manifest.datasets.values()]
    click.echo(format_rows(["dataset", "tracks", "hidden", "public spots", "hidden spots",
                            "genes", "patch"], rows))


COMMANDS: list[click.Command] = [datasets_command, synth_command, import_command,
                                 validate_command, release_command, releases_command,
                                 show_command]
"""This module's commands (``evaluator.cli.app`` registers them)."""
