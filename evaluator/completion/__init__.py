"""Completion of missing expression values: SpaRED's adaptive median filter and SpaCKLE."""

from evaluator.completion.errors import CheckpointError, CompletionInputError
from evaluator.completion.median import adaptive_median_filter

__all__ = [
    "CheckpointError",
    "CompletionInputError",
    "adaptive_median_filter",
]
