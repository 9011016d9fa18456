"""Data updates: re-process the raw inputs that changed, build a release, say what changed.

Raw inputs are registered in a folder (``<SPARED_BENCH_HOME>/raw`` by default), one per dataset,
named after it (registry name or abbreviation)::

    <dataset>.h5ad            raw counts (``evaluator.datasets.pipeline.raw``)
    <dataset>.sources.json    Space Ranger slides (``evaluator.datasets.pipeline.spaceranger``)
    <dataset>/sources.json    the same, in a folder
    <dataset>.config.json     optional pipeline configuration (or ``.config.toml``)

Each processed dataset has a state file ``<SPARED_BENCH_HOME>/pipeline/<dataset>.state.json``
recording the content hash of its input, the fingerprint of its configuration (with the
pipeline version and the SpaCKLE setting) and the output's path and hash. A dataset whose input
and configuration match its state, and whose output is intact, is reused, not recomputed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import anndata as ad
from pydantic import BaseModel, ConfigDict, ValidationError

from evaluator.completion import SpackleConfig
from evaluator.core.errors import DatasetNotFound
from evaluator.core.fsio import atomic_write_json, sha256_file
from evaluator.core.settings import Settings
from evaluator.datasets.pipeline.config import load_config
from evaluator.datasets.pipeline.errors import PipelineError
from evaluator.datasets.pipeline.inputs import input_fingerprint
from evaluator.datasets.pipeline.raw import SOURCES_NAME
from evaluator.datasets.pipeline.runner import PipelineReport, StepRecord, process_file
from evaluator.datasets.registry import get_dataset
from evaluator.datasets.release import (
    Release,
    ReleaseManifest,
    build_release,
    completion_fingerprint,
    completion_from_settings,
    list_releases,
)

STATE_SUFFIX = ".state.json"
CONFIG_SUFFIXES = (".config.json", ".config.toml")


@dataclass(frozen=True)
class RawSource:
    """A registered raw input: its dataset, input path and optional configuration file."""

    dataset: str
    input_path: Path
    config_path: Path | None


class DatasetState(BaseModel):
    """What the pipeline last produced for a dataset, and from what."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    input_path: str
    input_sha256: str
    config_sha256: str
    output_path: str
    output_sha256: str
    spots: int
    genes: list[str]
    processed_utc: datetime
    report: PipelineReport


class DatasetUpdate(BaseModel):
    """What ``update_datasets`` did with one dataset."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    action: Literal["processed", "reused"]
    reason: str
    output_path: str


class DatasetChange(BaseModel):
    """How a dataset differs between two releases."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    status: Literal["added", "removed", "changed", "unchanged"]
    genes_added: list[str] = []
    genes_removed: list[str] = []
    public_spots: tuple[int, int] = (0, 0)
    hidden_spots: tuple[int, int] = (0, 0)


class Changelog(BaseModel):
    """What a release changes relative to the previous one."""

    model_config = ConfigDict(extra="forbid")

    previous_release_id: str | None
    release_id: str
    datasets: list[DatasetChange]

    @property
    def changed(self) -> list[DatasetChange]:
        """Datasets added, removed or changed."""
        return [d for d in self.datasets if d.status != "unchanged"]

    def text(self) -> str:
        """Render the changelog as lines of text."""
        before = self.previous_release_id[:12] if self.previous_release_id else "nothing"
        lines = [f"release {self.release_id[:12]} (previous: {before}): "
                 f"{len(self.changed)} of {len(self.datasets)} dataset(s) changed"]
        for change in self.datasets:
            if change.status == "unchanged":
                continue
            (pub0, pub1), (hid0, hid1) = change.public_spots, change.hidden_spots
            line = (f"  {change.status:<8} {change.dataset}: public spots {pub0:,} -> {pub1:,}, "
                    f"hidden spots {hid0:,} -> {hid1:,}")
            if change.genes_added or change.genes_removed:
                line += (f"; genes +{len(change.genes_added)} -{len(change.genes_removed)}"
                         + _examples("+", change.genes_added)
                         + _examples("-", change.genes_removed))
            lines.append(line)
        return "\n".join(lines)


def _examples(sign: str, genes: list[str]) -> str:
    if not genes:
        return ""
    shown = ", ".join(genes[:5]) + (", ..." if len(genes) > 5 else "")
    return f" ({sign}{shown})"


def raw_dir(settings: Settings) -> Path:
    """The folder of registered raw inputs."""
    return settings.home / "raw"


def pipeline_dir(settings: Settings) -> Path:
    """The folder of the pipeline's state files and changelogs."""
    return settings.home / "pipeline"


def _dataset_of(stem: str, path: Path) -> str:
    try:
        return get_dataset(stem).name
    except DatasetNotFound as exc:
        raise PipelineError(f"{path}: expected a raw input named after a registry dataset "
                            f"(<dataset>.h5ad, <dataset>.sources.json or <dataset>/"
                            f"{SOURCES_NAME}), found {path.name!r}: {exc}") from exc


def discover_sources(folder: Path) -> list[RawSource]:
    """Return the raw inputs registered in ``folder``, sorted by dataset name.

    Raises ``PipelineError`` for a file named after no dataset, or two inputs of one dataset.
    """
    inputs: dict[str, Path] = {}
    configs: dict[str, Path] = {}
    if not folder.is_dir():
        return []
    for path in sorted(folder.iterdir()):
        name = path.name
        if name.startswith("."):
            continue
        if path.is_dir():
            if not (path / SOURCES_NAME).is_file():
                continue
            dataset, kind = _dataset_of(name, path), "input"
        elif name.endswith(CONFIG_SUFFIXES):
            stem = name.removesuffix(".config.json").removesuffix(".config.toml")
            dataset, kind = _dataset_of(stem, path), "config"
        elif name.endswith(".sources.json"):
            dataset, kind = _dataset_of(name.removesuffix(".sources.json"), path), "input"
        elif name.endswith(".h5ad"):
            dataset, kind = _dataset_of(name.removesuffix(".h5ad"), path), "input"
        else:
            continue
        table = inputs if kind == "input" else configs
        if dataset in table:
            raise PipelineError(f"{folder}: expected one {kind} per dataset, found two for "
                                f"{dataset}: {table[dataset].name} and {name}")
        table[dataset] = path
    orphans = sorted(set(configs) - set(inputs))
    if orphans:
        raise PipelineError(f"{folder}: expected a raw input for every config, found configs "
                            f"without one: {', '.join(configs[d].name for d in orphans)}")
    return [RawSource(d, inputs[d], configs.get(d)) for d in sorted(inputs)]


def state_path(settings: Settings, dataset: str) -> Path:
    """Where a dataset's state file lives."""
    return pipeline_dir(settings) / f"{get_dataset(dataset).name}{STATE_SUFFIX}"


def load_state(settings: Settings, dataset: str) -> DatasetState | None:
    """Return a dataset's state, or None when it has none (or an unreadable one)."""
    path = state_path(settings, dataset)
    if not path.is_file():
        return None
    try:
        return DatasetState.model_validate_json(path.read_bytes())
    except ValidationError:
        return None


def config_fingerprint(source: RawSource, completion: SpackleConfig | None = None) -> str:
    """Return the fingerprint of a dataset's configuration as the pipeline would run it."""
    config = load_config(source.config_path, source.dataset)
    return config.fingerprint(completion_fingerprint(completion) if config.spackle else "")


def _stale(state: DatasetState | None, input_sha: str, config_sha: str, output: Path) -> str:
    """Return why a dataset must be processed again ("" when it need not)."""
    if state is None:
        return "never processed"
    if state.input_sha256 != input_sha:
        return "raw input changed"
    if state.config_sha256 != config_sha:
        return "configuration changed"
    if Path(state.output_path) != output or not output.is_file():
        return "output missing"
    if sha256_file(output) != state.output_sha256:
        return "output modified"
    return ""


def update_datasets(
    settings: Settings,
    *,
    datasets: list[str] | None = None,
    force: bool = False,
    progress: bool = False,
    on_event: Callable[[str], None] | None = None,
    on_step: Callable[[str, StepRecord], None] | None = None,
) -> list[DatasetUpdate]:
    """Process every registered raw input whose content or configuration changed.

    ``datasets`` restricts the update to some datasets; ``force`` re-processes regardless.
    Outputs go to ``settings.processed_dir/<dataset>.h5ad`` (atomic) and states are written
    after each success. Raises ``PipelineError`` when no raw input is registered.
    """
    say = on_event or (lambda _msg: None)
    completion = completion_from_settings(settings)
    folder = raw_dir(settings)
    sources = discover_sources(folder)
    if datasets:
        wanted = {get_dataset(d).name for d in datasets}
        absent = sorted(wanted - {s.dataset for s in sources})
        if absent:
            raise PipelineError(f"{folder}: expected raw inputs for {', '.join(absent)}, found "
                                "none (register <dataset>.h5ad or <dataset>.sources.json there)")
        sources = [s for s in sources if s.dataset in wanted]
    if not sources:
        raise PipelineError(f"{folder}: expected raw inputs (<dataset>.h5ad or "
                            f"<dataset>.sources.json), found none; `spared-bench data synth-raw` "
                            "writes synthetic ones there")
    updates: list[DatasetUpdate] = []
    for i, source in enumerate(sources, start=1):
        output = settings.processed_dir / f"{source.dataset}.h5ad"
        input_sha = input_fingerprint(source.input_path)
        config_sha = config_fingerprint(source, completion)
        state = load_state(settings, source.dataset)
        reason = "forced" if force else _stale(state, input_sha, config_sha, output)
        if not reason:
            say(f"[{i}/{len(sources)}] {source.dataset}: unchanged, reusing {output.name}")
            updates.append(DatasetUpdate(dataset=source.dataset, action="reused",
                                         reason="input and configuration unchanged",
                                         output_path=str(output)))
            continue
        say(f"[{i}/{len(sources)}] {source.dataset}: {reason}; processing "
            f"{source.input_path.name}")
        step_cb = (lambda record, name=source.dataset: on_step(name, record)) if on_step else None
        report = process_file(source.input_path, source.dataset, output,
                              cache_dir=settings.cache_dir, config_path=source.config_path,
                              progress=progress, on_step=step_cb, completion=completion)

        written = ad.read_h5ad(output, backed="r")
        genes = [str(g) for g in written.var_names]
        written.file.close()
        state = DatasetState(
            dataset=source.dataset, input_path=str(source.input_path), input_sha256=input_sha,
            config_sha256=config_sha, output_path=str(output), output_sha256=sha256_file(output),
            spots=report.spots, genes=genes, processed_utc=datetime.now(UTC), report=report)
        atomic_write_json(state_path(settings, source.dataset), state.model_dump(mode="json"))
        updates.append(DatasetUpdate(dataset=source.dataset, action="processed", reason=reason,
                                     output_path=str(output)))
    return updates


def changelog(previous: ReleaseManifest | None, new: ReleaseManifest) -> Changelog:
    """Compare two release manifests: datasets added, removed, changed; genes and spots."""
    before = previous.datasets if previous else {}
    changes = []
    for name in sorted(set(before) | set(new.datasets)):
        old, cur = before.get(name), new.datasets.get(name)
        if old is None and cur is not None:
            changes.append(DatasetChange(dataset=name, status="added", genes_added=cur.genes,
                                         public_spots=(0, cur.n_public_spots),
                                         hidden_spots=(0, cur.n_hidden_spots)))
        elif cur is None and old is not None:
            changes.append(DatasetChange(dataset=name, status="removed",
                                         genes_removed=old.genes,
                                         public_spots=(old.n_public_spots, 0),
                                         hidden_spots=(old.n_hidden_spots, 0)))
        elif old is not None and cur is not None:
            same = (old.source_digest == cur.source_digest and old.tracks == cur.tracks
                    and old.genes == cur.genes)
            old_genes = set(old.genes)
            new_genes = set(cur.genes)
            changes.append(DatasetChange(
                dataset=name, status="unchanged" if same else "changed",
                genes_added=[g for g in cur.genes if g not in old_genes],
                genes_removed=[g for g in old.genes if g not in new_genes],
                public_spots=(old.n_public_spots, cur.n_public_spots),
                hidden_spots=(old.n_hidden_spots, cur.n_hidden_spots)))
    return Changelog(previous_release_id=previous.release_id if previous else None,
                     release_id=new.release_id, datasets=changes)


def build_update_release(
    settings: Settings,
    *,
    previous_release_id: str | None = None,
    label: str | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> tuple[Release, bool, Changelog, Path]:
    """Build the release of every processed dataset in the store and its changelog.

    The changelog compares with ``previous_release_id`` (e.g. the published release), else the
    newest release in the store before this build; it is written to
    ``<SPARED_BENCH_HOME>/pipeline/changelogs/<release_id>.json`` (releases are immutable).
    """
    sources = sorted(settings.processed_dir.glob("*.h5ad"))
    if not sources:
        raise PipelineError(f"{settings.processed_dir}: expected processed datasets, found none")
    manifests = {m.release_id: m for m in list_releases(settings.releases_dir)}
    release, created = build_release(
        sources, settings.releases_dir, label=label, cache_dir=settings.cache_dir,
        completion=completion_from_settings(settings),
        progress=settings.show_progress(), on_progress=on_progress)
    previous = manifests.get(previous_release_id) if previous_release_id else None
    if previous is None and previous_release_id is None and manifests:
        # The newest release before this build (this very release when nothing changed).
        previous = max(manifests.values(), key=lambda m: m.created_utc)
    log = changelog(previous, release.manifest)
    path = pipeline_dir(settings) / "changelogs" / f"{release.release_id}.json"
    atomic_write_json(path, json.loads(log.model_dump_json()))
    return release, created, log, path
