"""Datasets: the registry of the 26 SpaRED datasets, the schema, synthetic data and releases."""

from evaluator.core.vocabulary import TRACKS
from evaluator.datasets.registry import (
    TEST_SPLIT_DATASETS,
    DatasetInfo,
    SplitTable,
    dataset_names,
    get_dataset,
    load_registry,
    load_split_tables,
    spared_config,
    spared_gene_lengths,
)
from evaluator.datasets.release import (
    Release,
    ReleaseDataset,
    ReleaseManifest,
    Track,
    build_release,
    list_releases,
    load_release,
)
from evaluator.datasets.schema import check_dataset, read_h5ad, validate_dataset
from evaluator.datasets.splits import hidden_mask, hidden_split_name, split_table_problems
from evaluator.datasets.store import import_processed, write_h5ad
from evaluator.datasets.synthetic import SIZE_PRESETS, generate, generate_dataset

__all__ = [
    "SIZE_PRESETS",
    "TEST_SPLIT_DATASETS",
    "TRACKS",
    "DatasetInfo",
    "Release",
    "ReleaseDataset",
    "ReleaseManifest",
    "SplitTable",
    "Track",
    "build_release",
    "check_dataset",
    "dataset_names",
    "generate",
    "generate_dataset",
    "get_dataset",
    "hidden_mask",
    "hidden_split_name",
    "import_processed",
    "list_releases",
    "load_registry",
    "load_release",
    "load_split_tables",
    "read_h5ad",
    "spared_config",
    "spared_gene_lengths",
    "split_table_problems",
    "validate_dataset",
    "write_h5ad",
]
