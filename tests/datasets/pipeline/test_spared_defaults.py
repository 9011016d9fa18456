"""SpaRED's own configs, gene lengths, graph and sort order as the pipeline's defaults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluator.datasets.pipeline import default_config, load_config
from evaluator.datasets.pipeline.numpy_sort import introsort_argsort, pandas_descending_order
from evaluator.datasets.pipeline.steps import real_data_rule, spared_knn_graph
from evaluator.datasets.registry import (
    load_registry,
    spared_config,
    spared_gene_lengths,
)

# numpy 1.26's argsort(kind='quicksort') through its portable introsort (SIMD sorts disabled),
# and pandas 2.1's sort_values(ascending=False) on top of it: the golden orders of ties.
VALUES = [0.0, 0.5, 1.0, np.nan, 0.75, 0.0, 0.5, 1.0, 0.25, 0.75, 0.0, np.nan, 1.0, 0.25, 0.75,
          0.0, 0.5, 1.0, 0.25, 0.75, 0.0, 0.5, 1.0, 0.25, 0.75, 0.0, 0.5, 1.0, 0.25, 0.75, 0.0,
          0.5, 1.0, 0.25, 0.75, 0.0, 0.5, 1.0, 0.25, 0.75]
NUMPY_ORDER = [0, 20, 15, 25, 10, 30, 5, 35, 28, 38, 18, 13, 23, 8, 33, 31, 36, 16, 26, 1, 21,
               6, 34, 29, 19, 14, 9, 4, 24, 39, 22, 17, 27, 12, 32, 7, 2, 37, 11, 3]
PANDAS_DESCENDING = [32, 2, 37, 17, 7, 27, 22, 12, 14, 19, 29, 39, 9, 34, 4, 24, 31, 36, 26, 21,
                     1, 6, 16, 23, 38, 8, 33, 13, 28, 18, 30, 15, 10, 35, 25, 5, 20, 0, 3, 11]


def test_sort_reproduces_numpy_portable_quicksort_and_pandas() -> None:
    values = np.array(VALUES)
    assert introsort_argsort(values).tolist() == NUMPY_ORDER
    assert pandas_descending_order(values).tolist() == PANDAS_DESCENDING
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 15, 16, 17, 300, 5000):
        x = rng.integers(0, 7, n) / 3.0
        x[rng.random(n) < 0.05] = np.nan
        order = introsort_argsort(x)
        assert sorted(order.tolist()) == list(range(n))
        finite = x[order][~np.isnan(x[order])]
        assert (np.diff(finite) >= 0).all() and np.isnan(x[order][finite.size:]).all()
        unique = rng.permutation(n).astype(float)  # no ties: any sort agrees with pandas
        expected = pd.DataFrame({"e": unique}).sort_values("e", ascending=False).index
        assert pandas_descending_order(unique).tolist() == expected.tolist()


def test_real_data_rule_breaks_ties_in_pandas_order() -> None:
    exp_frac = np.array(VALUES)
    glob = np.empty(exp_frac.size)
    glob[PANDAS_DESCENDING] = 1.0 - np.arange(exp_frac.size) / 50.0  # decreasing in that order
    running = np.cumsum(glob[PANDAS_DESCENDING]) / np.arange(1, exp_frac.size + 1)
    # The cut falls inside the group tied at 0.5 (positions 16-22 of pandas' order).
    keep = real_data_rule(exp_frac, glob, float(running[18]))
    assert np.flatnonzero(keep).tolist() == sorted(PANDAS_DESCENDING[:19])
    stable = real_data_rule(exp_frac, glob, float(running[18]), ties="stable")
    assert (stable != keep).any()  # input order would keep other genes


def test_spared_configs_are_the_defaults() -> None:
    for info in load_registry():
        config, spared = default_config(info.name), spared_config(info.name)
        assert config.top_moran_genes == spared["top_moran_genes"] == info.genes
        assert config.combat_key == spared["combat_key"] == info.combat_key
        assert config.organism == spared["organism"] == info.organism
        assert config.cell_min_counts == spared["cell_min_counts"]
        assert config.mode == "spared" and config.gene_lengths == "spared"
    assert default_config("mirzazadeh_human_small_intestine").cell_min_counts == 800
    assert default_config("MHCP1").cell_min_counts == 10


def test_a_config_file_overrides_spared_field_by_field(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"gene_min_counts": 5, "mode": "exact-hex"}')
    config = load_config(path, "MHSI")
    assert (config.gene_min_counts, config.cell_min_counts, config.mode) == (5, 800, "exact-hex")


def test_spared_gene_lengths_are_its_tables_without_versions() -> None:
    human, mouse = spared_gene_lengths("human"), spared_gene_lengths("mouse")
    assert len(human) == 62_619 and len(mouse) == 56_847
    assert human["ENSG00000223972"] == 632 and mouse["ENSMUSG00000102693"] == 1070
    assert all("." not in g for g in list(human)[:1000])
    with pytest.raises(ValueError, match="expected 'human' or 'mouse'"):
        spared_gene_lengths("rat")


def test_knn_graph_is_stored_transposed_and_directed() -> None:
    # A row of 8 spots 1 apart and an island far away, on one slide.
    xy = np.array([[float(i), 0.0] for i in range(8)] + [[100.0, 0.0]])
    graph = spared_knn_graph(xy, np.zeros(9, int), n_neighs=6).toarray()
    # Column i holds i's 6 nearest; row j the spots having j among theirs.
    assert (graph.sum(axis=0) == 6).all()
    assert graph[8].sum() == 0 and graph[:, 8].sum() == 6  # nobody's neighbour: empty row
    assert graph[7, 8] == 1 and graph[8, 7] == 0  # the island chose 7, 7 did not choose it
    with pytest.raises(ValueError, match="a slide with 5 spots"):
        spared_knn_graph(xy[:5], np.zeros(5, int))
