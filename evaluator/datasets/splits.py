"""Which split of a dataset is hidden (scored) and which is public (training)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import numpy.typing as npt

SplitName = Literal["train", "val", "test"]
SPLIT_NAMES: tuple[SplitName, ...] = ("train", "val", "test")


def hidden_split_name(splits: Iterable[str]) -> Literal["test", "val"]:
    """Return the hidden split: ``test`` when the dataset has test spots, otherwise ``val``."""
    present = set(np.unique(np.asarray(list(splits), dtype=object)).tolist())
    return "test" if "test" in present else "val"


def hidden_mask(splits: npt.ArrayLike) -> np.ndarray:
    """Return a boolean array, True for spots of the hidden split.

    See docs/ARCHITECTURE.md, "Dataset schema".
    """
    values = np.asarray(splits, dtype=object).astype(str)
    return values == hidden_split_name(values)
