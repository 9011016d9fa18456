"""Dataset filters of the leaderboard (organism, tissue, generalization, gene count) and the
parsing of the request parameters that choose a view (release, track, filter).

A filter selects a subset of a release's datasets by their registry facts; ranks and statistics
are then recomputed on that subset only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from evaluator.core.vocabulary import TRACKS, Track
from evaluator.datasets import DatasetInfo, load_registry
from leaderboard.errors import BadParameter

FILTER_KEYS: tuple[str, ...] = ("organism", "tissue", "generalization", "genes")
_GENERALIZATION = {"intra": "intra-patient", "inter": "inter-patient",
                   "intra-patient": "intra-patient", "inter-patient": "inter-patient"}


def registry_by_name() -> dict[str, DatasetInfo]:
    """The 26 datasets by name."""
    return {info.name: info for info in load_registry()}


def tissues() -> list[str]:
    """Every tissue named in the registry, sorted."""
    return sorted({info.tissue for info in load_registry()})


class DatasetFilter(BaseModel):
    """Which datasets a view covers; every field None = all of the release's datasets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    organism: Literal["human", "mouse"] | None = None
    tissue: str | None = None
    generalization: Literal["intra-patient", "inter-patient"] | None = None
    genes: Literal[128, 32] | None = None

    @property
    def active(self) -> bool:
        """True when at least one criterion is set."""
        return any(getattr(self, key) is not None for key in FILTER_KEYS)

    @property
    def key(self) -> str:
        """A canonical text of the filter (cache keys, links): ``organism=human&genes=128``."""
        return "&".join(f"{k}={getattr(self, k)}" for k in FILTER_KEYS
                        if getattr(self, k) is not None)

    def params(self) -> dict[str, str]:
        """The filter as query parameters (set fields only)."""
        return {k: str(getattr(self, k)) for k in FILTER_KEYS if getattr(self, k) is not None}

    def describe(self) -> str:
        """Human-readable summary, e.g. ``human, 128 genes``; ``all datasets`` when inactive."""
        parts = [str(getattr(self, k)) if k != "genes" else f"{self.genes} genes"
                 for k in FILTER_KEYS if getattr(self, k) is not None]
        return ", ".join(parts) if parts else "all datasets"

    def matches(self, info: DatasetInfo | None) -> bool:
        """True when a dataset's facts meet every set criterion (unknown datasets never do)."""
        if not self.active:
            return True
        if info is None:
            return False
        return ((self.organism is None or info.organism == self.organism)
                and (self.tissue is None or info.tissue == self.tissue)
                and (self.generalization is None or info.generalization == self.generalization)
                and (self.genes is None or info.genes == self.genes))

    def select(self, datasets: Iterable[str]) -> list[str]:
        """The datasets (of a release) this filter keeps, sorted."""
        facts = registry_by_name()
        return sorted(d for d in datasets if self.matches(facts.get(d)))


def parse_track(value: str | None, default: Track = "raw") -> Track:
    """``raw`` or ``spackle``; ``BadParameter`` otherwise."""
    if value is None or value == "":
        return default
    if value not in TRACKS:
        raise BadParameter("track", "one of raw, spackle", value)
    return value


def parse_filter(args: Mapping[str, str]) -> DatasetFilter:
    """Read ``organism``, ``tissue``, ``generalization`` (intra/inter[-patient]) and ``genes``.

    Empty values mean "any". Raises ``BadParameter`` naming the parameter and what it accepts.
    """
    values: dict[str, object] = {}
    organism = (args.get("organism") or "").strip().lower()
    if organism:
        if organism not in {"human", "mouse"}:
            raise BadParameter("organism", "human or mouse", organism)
        values["organism"] = organism
    tissue = (args.get("tissue") or "").strip()
    if tissue:
        known = tissues()
        if tissue not in known:
            raise BadParameter("tissue", f"one of {', '.join(known)}", tissue)
        values["tissue"] = tissue
    generalization = (args.get("generalization") or "").strip().lower()
    if generalization:
        if generalization not in _GENERALIZATION:
            raise BadParameter("generalization", "intra or inter (-patient)", generalization)
        values["generalization"] = _GENERALIZATION[generalization]
    genes = (args.get("genes") or "").strip()
    if genes:
        if genes not in {"128", "32"}:
            raise BadParameter("genes", "128 or 32", genes)
        values["genes"] = int(genes)
    return DatasetFilter(**values)
