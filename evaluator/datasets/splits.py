"""Which split of a dataset is hidden (scored), and whether a file's splits are SpaRED's.

The hidden split of a registry dataset is ``DatasetInfo.hidden_split`` (``test`` where SpaRED's
reader defines one, else ``val``); ``hidden_split_name`` reads it off a file's own splits, which
agree with it for every file that passes ``split_table_problems``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from evaluator.core.errors import SchemaProblem

# the rule itself is core's (SpaCKLE's evaluation, below the datasets, uses it too)
from evaluator.core.splits import hidden_mask as hidden_mask
from evaluator.core.splits import hidden_split_name as hidden_split_name

# SPLIT_NAMES and SplitName are the registry's (its SplitTable needs them); re-exported here
from evaluator.datasets.registry import SPLIT_NAMES as SPLIT_NAMES
from evaluator.datasets.registry import SplitName as SplitName
from evaluator.datasets.registry import SplitTable


def split_table_problems(splits: npt.ArrayLike, slide_ids: npt.ArrayLike,
                         table: SplitTable, dataset: str) -> list[SchemaProblem]:
    """Return how ``obs['split']`` / ``obs['slide_id']`` disagree with SpaRED's split table.

    Every slide of the table must be present, no other slide may be, and every spot of a slide
    must carry the slide's split. Empty when they agree.
    """
    frame = pd.DataFrame({"split": np.asarray(splits, dtype=object).astype(str),
                          "slide": np.asarray(slide_ids, dtype=object).astype(str)})
    expected = table.split_of()
    found = set(frame["slide"].unique().tolist())
    problems: list[SchemaProblem] = []
    unknown = sorted(found - set(expected))
    absent = sorted(set(expected) - found)
    if unknown:
        problems.append(SchemaProblem(
            "obs['slide_id']", f"the slides of SpaRED's split table of {dataset} "
            f"({', '.join(table.slide_ids)})", f"other slides: {', '.join(unknown)}"))
    if absent:
        problems.append(SchemaProblem(
            "obs['slide_id']", f"every slide of SpaRED's split table of {dataset}",
            f"missing: {', '.join(absent)}"))
    for slide, group in frame.groupby("slide", sort=True):
        want = expected.get(str(slide))
        have = sorted(set(group["split"].tolist()))
        if want is not None and have != [want]:
            problems.append(SchemaProblem(
                f"obs['split'] of slide {slide}", f"'{want}' (SpaRED's split table of "
                f"{dataset})", ", ".join(repr(s) for s in have)))
    return problems
