"""The processing pipeline: raw counts to a processed SpaRED dataset, and data updates.

``process_file`` / ``process_raw`` run SpaRED's steps in SpaRED's order (``runner``), with a
per-dataset ``PipelineConfig`` (``config``); raw inputs are AnnData counts or Space Ranger
folders listed in a sources file (``raw``, ``spaceranger``); ``update_datasets`` re-processes
the registered raw inputs whose content or configuration changed and builds a release with a
changelog (``update``).
"""

from evaluator.datasets.pipeline.config import (
    PIPELINE_VERSION,
    PipelineConfig,
    default_config,
    load_config,
)
from evaluator.datasets.pipeline.errors import PipelineConfigError, PipelineError, RawInputError
from evaluator.datasets.pipeline.inputs import input_fingerprint, read_raw
from evaluator.datasets.pipeline.raw import RawData, raw_from_anndata
from evaluator.datasets.pipeline.runner import (
    STEP_NAMES,
    PipelineReport,
    StepRecord,
    process_file,
    process_raw,
)

__all__ = [
    "PIPELINE_VERSION",
    "STEP_NAMES",
    "PipelineConfig",
    "PipelineConfigError",
    "PipelineError",
    "PipelineReport",
    "RawData",
    "RawInputError",
    "StepRecord",
    "default_config",
    "input_fingerprint",
    "load_config",
    "process_file",
    "process_raw",
    "raw_from_anndata",
    "read_raw",
]
