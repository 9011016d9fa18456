"""Registry of the 26 SpaRED datasets, read from the packaged ``data/spared_datasets.csv``.

The CSV is a verbatim copy of the project's source of facts (SpaRED paper, Table 1). The one
fact it does not carry — which datasets define a separate test split — comes from the paper's
text ("in 11 out of 26 cases, a separate test set is defined"); ``TEST_SPLIT_DATASETS`` names
them, chosen as the datasets with enough slides (and patients, for inter-patient ones) to hold
train, validation and test apart.
"""

from __future__ import annotations

import csv
import difflib
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from evaluator.core.errors import DatasetNotFound

Generalization = Literal["intra-patient", "inter-patient"]
CombatKey = Literal["patient", "slide_id"]

TEST_SPLIT_DATASETS: frozenset[str] = frozenset(
    {
        "vicari_mouse_brain",
        "mirzazadeh_mouse_brain",
        "erickson_human_prostate_cancer_p2",
        "erickson_human_prostate_cancer_p1",
        "mirzazadeh_mouse_brain_p2",
        "mirzazadeh_mouse_brain_p1",
        "abalo_human_squamous_cell_carcinoma",
        "mirzazadeh_mouse_bone",
        "mirzazadeh_human_pediatric_brain_tumor_p1",
        "villacampa_lung_organoid",
        "vicari_human_striatium",
    }
)


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
    has_test_split: bool

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
            organism=row["organism"],  # type: ignore[arg-type]
            tissue=row["tissue"],
            generalization=row["generalization"],  # type: ignore[arg-type]
            genes=int(row["genes"]),  # type: ignore[arg-type]
            combat_key=row["combat_key"],  # type: ignore[arg-type]
            slides=int(row["slides"]),
            patients=int(row["patients"]),
            spots=int(row["spots"]),
            missing_before_pct=float(row["missing_before_pct"]),
            missing_after_pct=float(row["missing_after_pct"]),
            has_test_split=row["name"] in TEST_SPLIT_DATASETS,
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
