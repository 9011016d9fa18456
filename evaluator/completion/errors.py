"""Errors of the completion layer (median filter, SpaCKLE)."""

from __future__ import annotations

from evaluator.core.errors import BenchError


class CompletionInputError(BenchError):
    """Inputs to a completion method are missing or malformed (shape, layer, coordinates)."""


class CheckpointError(BenchError):
    """A SpaCKLE checkpoint is missing, unreadable or does not match the data it is used on."""
