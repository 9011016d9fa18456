"""Per-dataset pipeline configuration: SpaRED's processing parameters, validated by pydantic.

A configuration file is JSON (``.json``) or TOML (``.toml``) with any of the fields of
``PipelineConfig``; every field left out takes its default, and the defaults are SpaRED's own
per-dataset configurations (``spared/configs/<dataset>.json`` of ``spared==2.2.1``, packaged as
``evaluator/datasets/data/spared_configs.json``, ``registry.spared_config``): count and
fraction thresholds (e.g. ``cell_min_counts`` 800 for mirzazadeh_human_small_intestine, 10
elsewhere), ``real_data_percentage``, ``top_moran_genes``, ``combat_key``, ``organism``,
``hex_geometry``; the median filter's 4 hops are ``process_dataset``'s.

``mode`` names how neighbourhoods and ComBat are computed:

- ``spared`` (default): as SpaRED's library — squidpy 1.2.3's 6-nearest-neighbour graph on
  pixel coordinates (stored transposed: row ``j`` lists the spots that have ``j`` among their 6
  nearest) for the median filter's windows and Moran's I, pyComBat (``combat==0.3.3``), genes
  tied in expression fraction ordered by pandas' default sort, SpaRED's gene lengths.
- ``exact-hex``: the project's earlier choices — exact hexagonal rings on ``array_row`` /
  ``array_col`` (border spots get their true neighbours; the kNN graph gives them farther spots
  and a directed graph), scanpy's ComBat, ties in input order. Numbers differ from SpaRED's:
  about a quarter of the median-completed entries and a few of the top Moran genes.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evaluator.core.errors import DatasetNotFound
from evaluator.datasets.pipeline.errors import PipelineConfigError
from evaluator.datasets.registry import get_dataset, spared_config

# Bump when a step's computation changes: it is part of every processed dataset's fingerprint,
# so `data update` re-processes what an older pipeline produced.
PIPELINE_VERSION = "2"


SPARED_FIELDS: tuple[str, ...] = (
    "cell_min_counts", "cell_max_counts", "gene_min_counts", "gene_max_counts", "min_exp_frac",
    "min_glob_exp_frac", "real_data_percentage", "top_moran_genes", "combat_key", "organism",
    "hex_geometry",
)
"""Fields whose defaults are SpaRED's own per-dataset configuration (``spared_config``)."""


class PipelineConfig(BaseModel):
    """Parameters of one dataset's processing, in SpaRED's terms (``param_dict``).

    Spot and gene filters keep totals strictly inside ``(min, max)`` as SpaRED's
    ``filter_dataset`` does. ``min_exp_frac`` (the minimum over slides of the fraction of spots
    expressing a gene) and ``min_glob_exp_frac`` (the fraction over the whole dataset) are
    thresholds, ``-1`` meaning off (SpaRED's published value). ``real_data_percentage`` is
    SpaRED's rule on both fractions: genes sorted by ``exp_frac`` (highest first) are kept up to
    the last position where the running mean of ``glob_exp_frac`` is at least this value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(description="registry name of the dataset")
    mode: Literal["spared", "exact-hex"] = Field(
        "spared", description="spared: SpaRED's library (kNN graph, pyComBat); exact-hex: "
                              "hexagonal rings and scanpy's ComBat")
    organism: Literal["human", "mouse"] | None = Field(
        None, description="gene-length table of SpaRED's TPM; None = SpaRED's config")
    hex_geometry: bool = Field(True, description="Visium hexagonal grid (SpaRED: all 26)")
    gene_lengths: Literal["spared", "input"] = Field(
        "spared", description="spared: SpaRED's table of the organism by gene id (genes not "
                              "in it dropped, as SpaRED); input: the raw input's gene_length")
    cell_min_counts: float = Field(10, ge=0, description="a spot needs total counts above this")
    cell_max_counts: float = Field(1_000_000, gt=0, description="... and below this")
    gene_min_counts: float = Field(10, ge=0, description="a gene needs total counts above this")
    gene_max_counts: float = Field(1_000_000, gt=0, description="... and below this")
    min_exp_frac: float = Field(-1.0, ge=-1.0, le=1.0,
                                description="minimum per-slide expression fraction; -1 = off")
    min_glob_exp_frac: float = Field(-1.0, ge=-1.0, le=1.0,
                                     description="minimum global expression fraction; -1 = off")
    real_data_percentage: float = Field(0.7, ge=0.0, le=1.0,
                                        description="SpaRED's running-mean rule; 0 = off")
    top_moran_genes: int = Field(0, ge=0, description="genes kept by Moran's I; 0 = registry")
    combat_key: Literal["patient", "slide_id", "registry"] | None = Field(
        "registry", description="obs column of ComBat's batches; null = no correction")
    n_hops: int = Field(4, ge=1, le=10, description="largest window of the median filter")
    moran_backend: Literal["squidpy", "numpy"] = Field(
        "squidpy", description="squidpy's spatial_autocorr (as SpaRED) or one sparse product "
                               "per slide (same values to ~1e-9, several times faster)")
    spackle: bool = Field(True, description="add the SpaCKLE-completed layer c_t_log1p")
    chunk_mb: float = Field(256.0, gt=0,
                            description="memory for the median filter and Moran's I per chunk")

    @model_validator(mode="before")
    @classmethod
    def _spared_defaults(cls, data: Any) -> Any:
        """Fill the fields left out from SpaRED's own configuration of the dataset."""
        if not isinstance(data, dict) or "dataset" not in data:
            return data

        try:
            spared = spared_config(str(data["dataset"]))
        except DatasetNotFound:
            return data
        defaults = {key: spared[key] for key in SPARED_FIELDS}
        return {**defaults, **data}

    @model_validator(mode="after")
    def _ranges(self) -> PipelineConfig:
        for low, high in (("cell_min_counts", "cell_max_counts"),
                          ("gene_min_counts", "gene_max_counts")):
            if getattr(self, low) >= getattr(self, high):
                raise ValueError(f"{low}: expected less than {high}={getattr(self, high)}, "
                                 f"found {getattr(self, low)}")
        return self

    def resolved(self) -> PipelineConfig:
        """Return the configuration with registry defaults filled in (name, genes, ComBat key).

        Raises ``PipelineConfigError`` when ``top_moran_genes`` differs from the registry: the
        processed dataset must have the registry's 128 or 32 genes.
        """
        info = get_dataset(self.dataset)
        genes = self.top_moran_genes or info.genes
        if genes != info.genes:
            raise PipelineConfigError(
                f"config of {info.name}",
                f"top_moran_genes: expected {info.genes} (the registry's gene count), "
                f"found {self.top_moran_genes}")
        key = info.combat_key if self.combat_key == "registry" else self.combat_key
        if self.mode == "spared" and not self.hex_geometry:
            raise PipelineConfigError(
                f"config of {info.name}", "hex_geometry: expected true in mode 'spared' (all "
                "26 SpaRED datasets are Visium), found false")
        return self.model_copy(update={"dataset": info.name, "top_moran_genes": genes,
                                       "combat_key": key,
                                       "organism": self.organism or info.organism})

    def fingerprint(self, extra: str = "") -> str:
        """Return the sha256 of the resolved configuration, the pipeline version and ``extra``.

        ``chunk_mb`` only trades memory for speed and is left out: results do not depend on it.
        """
        fields = self.resolved().model_dump(mode="json", exclude={"chunk_mb"})
        canonical = json.dumps({"config": fields, "pipeline_version": PIPELINE_VERSION,
                                "extra": extra}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def default_config(dataset: str) -> PipelineConfig:
    """Return the registry-default configuration of a dataset (resolved)."""
    return PipelineConfig(dataset=get_dataset(dataset).name).resolved()


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PipelineConfigError(str(path), "expected a configuration file, found nothing")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise PipelineConfigError(str(path), "expected a .json or .toml file, found "
                                      f"suffix {path.suffix!r}")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PipelineConfigError(str(path), f"expected valid {path.suffix[1:].upper()}, "
                                  f"found a syntax error ({exc})") from exc
    if not isinstance(data, dict):
        raise PipelineConfigError(str(path), "expected an object of parameters, found "
                                  f"{type(data).__name__}")
    return data


def load_config(path: Path | str | None, dataset: str) -> PipelineConfig:
    """Return the resolved configuration of ``dataset`` from ``path`` (None: the defaults).

    A ``dataset`` field in the file must name the same dataset. Raises
    ``PipelineConfigError`` naming the file and the field for anything invalid.
    """
    info = get_dataset(dataset)
    if path is None:
        return default_config(info.name)
    path = Path(path)
    data = _read_mapping(path)
    named = data.get("dataset")
    if named is not None and get_dataset(str(named)).name != info.name:
        raise PipelineConfigError(str(path), f"dataset: expected {info.name}, found {named!r}")
    try:
        config = PipelineConfig(**{**data, "dataset": info.name})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "(file)"
        found = error.get("input")
        raise PipelineConfigError(
            str(path), f"{where}: expected a valid value ({error['msg']}), found {found!r}"
            + (f" ({exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else "")
        ) from exc
    try:
        return config.resolved()
    except PipelineConfigError as exc:
        raise PipelineConfigError(str(path), exc.problem) from exc
