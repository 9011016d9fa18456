"""The hidden (scored) split of a dataset, read off its spots' split names: one rule for the
release build, scoring and SpaCKLE's evaluation.

``test`` where the dataset has test spots, otherwise ``val`` (SpaRED's readers define a test
split for 11 of the 26 datasets; ``DatasetInfo.hidden_split`` says the same from the registry).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["hidden_mask", "hidden_split_name"]


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
