"""Completion of missing expression values: SpaRED's adaptive median filter and SpaCKLE.

This package exports the light part (numpy/scipy): the median filter, the neighbourhoods,
SpaCKLE's configuration and the errors. What needs torch (the science extra) is imported from
its module: ``evaluator.completion.spackle`` (SpaCKLE itself), ``evaluator.completion.layers``
(completing an AnnData's layers) and ``evaluator.completion.evaluation`` (the paper's
protocol), so ``from evaluator.completion import adaptive_median_filter`` never loads torch.
"""

from __future__ import annotations

from evaluator.completion.config import SpackleConfig
from evaluator.completion.errors import CheckpointError, CompletionInputError
from evaluator.completion.median import adaptive_median_filter
from evaluator.completion.neighborhoods import nearest_neighborhoods

__all__ = [
    "CheckpointError",
    "CompletionInputError",
    "SpackleConfig",
    "adaptive_median_filter",
    "nearest_neighborhoods",
]
