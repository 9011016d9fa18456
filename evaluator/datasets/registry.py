"""Registry of the 26 SpaRED datasets, read from the packaged data files.

- ``data/spared_datasets.csv``: a verbatim copy of the project's source of facts (SpaRED paper,
  Table 1).
- ``data/spared_splits.json``: the slide ids of each split (train, val, test) of every dataset
  as SpaRED's readers define them (``spared==2.2.1``, ``spared/readers/*Reader.py``); 11 of the
  26 define a test split. ``TEST_SPLIT_DATASETS`` is read from it.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import json
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluator.core.errors import DatasetNotFound

Generalization = Literal["intra-patient", "inter-patient"]
CombatKey = Literal["patient", "slide_id"]

SplitName = Literal["train", "val", "test"]
SPLIT_NAMES: tuple[SplitName, ...] = ("train", "val", "test")


class SplitTable(BaseModel):
    """Slide ids of each split of one dataset, as SpaRED's reader defines them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: tuple[str, ...] = Field(min_length=1)
    val: tuple[str, ...] = Field(min_length=1)
    test: tuple[str, ...] = ()

    def split_of(self) -> dict[str, SplitName]:
        """Return slide id -> split name."""
        return {slide: name for name in SPLIT_NAMES for slide in getattr(self, name)}

    @property
    def slide_ids(self) -> tuple[str, ...]:
        """All slide ids, train then val then test."""
        return self.train + self.val + self.test


@lru_cache(maxsize=1)
def load_split_tables() -> dict[str, SplitTable]:
    """Return the packaged split table of every dataset (``data/spared_splits.json``)."""
    text = resources.files("evaluator.datasets").joinpath("data/spared_splits.json").read_text()
    return {name: SplitTable(**splits) for name, splits in json.loads(text)["datasets"].items()}


def split_table_source() -> str:
    """Return where the packaged split table was copied from."""
    text = resources.files("evaluator.datasets").joinpath("data/spared_splits.json").read_text()
    return str(json.loads(text)["source"])


TEST_SPLIT_DATASETS: frozenset[str] = frozenset(
    name for name, table in load_split_tables().items() if table.test)


class DatasetInfo(BaseModel):
    """Facts of one SpaRED dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    abbreviation: str
    organism: Literal["human", "mouse"]
    tissue: str
    generalization: Generalization
    genes: Literal[128, 32]
    combat_key: CombatKey
    slides: int = Field(gt=0)
    patients: int = Field(gt=0)
    spots: int = Field(gt=0)
    missing_before_pct: float = Field(ge=0, le=100)
    missing_after_pct: float = Field(ge=0, le=100)
    splits: SplitTable

    @property
    def has_test_split(self) -> bool:
        """Whether SpaRED's reader defines a test split for the dataset."""
        return bool(self.splits.test)

    @property
    def hidden_split(self) -> Literal["test", "val"]:
        """The split that is scored: ``test`` where the dataset defines one, else ``val``."""
        return "test" if self.has_test_split else "val"


@lru_cache(maxsize=1)
def load_registry() -> tuple[DatasetInfo, ...]:
    """Return all 26 datasets in the CSV's order (largest-first within each group, as Table 1)."""
    text = resources.files("evaluator.datasets").joinpath("data/spared_datasets.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    return tuple(
        DatasetInfo(
            name=row["name"],
            abbreviation=row["abbreviation"],
            organism=row["organism"],
            tissue=row["tissue"],
            generalization=row["generalization"],
            genes=int(row["genes"]),
            combat_key=row["combat_key"],
            slides=int(row["slides"]),
            patients=int(row["patients"]),
            spots=int(row["spots"]),
            missing_before_pct=float(row["missing_before_pct"]),
            missing_after_pct=float(row["missing_after_pct"]),
            splits=load_split_tables()[row["name"]],
        )
        for row in rows
    )


def dataset_names() -> list[str]:
    """Return the 26 dataset names."""
    return [d.name for d in load_registry()]


def get_dataset(name: str) -> DatasetInfo:
    """Return the dataset called ``name`` (full name or abbreviation, case-insensitive).

    Raises ``DatasetNotFound`` listing close matches when there is no such dataset.
    """
    key = name.strip().lower()
    for info in load_registry():
        if key in (info.name.lower(), info.abbreviation.lower()):
            return info
    candidates = [d.name for d in load_registry()] + [d.abbreviation for d in load_registry()]
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(key, list(lowered), n=4, cutoff=0.6)
    close += [c for c in lowered if key and key in c and c not in close][: max(0, 4 - len(close))]
    raise DatasetNotFound(name, [lowered[c] for c in close])


@lru_cache(maxsize=1)
def _spared_configs() -> dict[str, dict[str, object]]:
    text = resources.files("evaluator.datasets").joinpath("data/spared_configs.json").read_text()
    return dict(json.loads(text)["datasets"])


def spared_config(name: str) -> dict[str, object]:
    """Return SpaRED's own processing configuration of a dataset (``spared/configs/<name>.json``).

    The processing fields verbatim (``cell_min_counts`` ... ``hex_geometry``), packaged as
    ``data/spared_configs.json``; the pipeline's defaults (``pipeline.config``).
    """
    return dict(_spared_configs()[get_dataset(name).name])


@lru_cache(maxsize=2)
def spared_gene_lengths(organism: str) -> dict[str, int]:
    """Return SpaRED's gene lengths of ``organism`` (``human`` or ``mouse``): gene id -> bases.

    From ``spared/data/annotations/gene_length*.txt`` (GENCODE v43 / vM33, column ``merged``),
    ids without their version, first occurrence kept — what SpaRED's ``tpm_normalization``
    divides by. Packaged as ``data/gene_length_<organism>.tsv.gz``.
    """
    if organism not in ("human", "mouse"):
        raise ValueError(f"organism: expected 'human' or 'mouse', found {organism!r}")
    raw = resources.files("evaluator.datasets").joinpath(
        f"data/gene_length_{organism}.tsv.gz").read_bytes()
    lines = gzip.decompress(raw).decode().splitlines()
    rows = (line.split("\t") for line in lines[2:] if line)
    return {gene: int(length) for gene, length in rows}
