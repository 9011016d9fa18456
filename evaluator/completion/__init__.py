"""Completion of missing expression values: SpaRED's adaptive median filter and SpaCKLE.

The median filter imports only numpy/scipy; everything that needs torch (SpaCKLE, the
evaluation protocol, the AnnData helpers) is imported on first use, so
``from evaluator.completion import adaptive_median_filter`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evaluator.completion.config import SpackleConfig
from evaluator.completion.errors import CheckpointError, CompletionInputError
from evaluator.completion.median import adaptive_median_filter
from evaluator.completion.neighborhoods import nearest_neighborhoods

if TYPE_CHECKING:
    from evaluator.completion.evaluation import (
        FIG4_FRACTIONS,
        AssayScore,
        MethodSummary,
        evaluate_completion,
        format_comparison,
        hidden_split_spots,
        masked_pcc,
        missing_fraction_sweep,
        random_hidden_mask,
        summarize,
    )
    from evaluator.completion.layers import (
        CompletionReport,
        add_completion_layers,
        complete_anndata,
        read_mask,
        spot_data_from_anndata,
    )
    from evaluator.completion.spackle import (
        SpackleNet,
        SpotData,
        TrainedSpackle,
        median_precomplete,
        resolve_device,
            train_or_load,
        train_spackle,
    )

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ("FIG4_FRACTIONS", "AssayScore", "MethodSummary", "evaluate_completion",
         "format_comparison", "hidden_split_spots", "masked_pcc", "missing_fraction_sweep",
         "random_hidden_mask", "summarize"),
        "evaluator.completion.evaluation",
    ),
    **dict.fromkeys(
        ("CompletionReport", "add_completion_layers", "complete_anndata", "read_mask",
         "spot_data_from_anndata"),
        "evaluator.completion.layers",
    ),
    **dict.fromkeys(
        ("SpackleNet", "SpotData", "TrainedSpackle", "median_precomplete",
         "resolve_device", "train_or_load", "train_spackle"),
        "evaluator.completion.spackle",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evaluator.completion' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "FIG4_FRACTIONS",
    "AssayScore",
    "CheckpointError",
    "CompletionInputError",
    "CompletionReport",
    "MethodSummary",
    "SpackleConfig",
    "SpackleNet",
    "SpotData",
    "TrainedSpackle",
    "adaptive_median_filter",
    "add_completion_layers",
    "complete_anndata",
    "evaluate_completion",
    "format_comparison",
    "hidden_split_spots",
    "masked_pcc",
    "median_precomplete",
    "missing_fraction_sweep",
    "nearest_neighborhoods",
    "random_hidden_mask",
    "read_mask",
    "resolve_device",
    "spot_data_from_anndata",
    "summarize",
    "train_or_load",
    "train_spackle",
]
