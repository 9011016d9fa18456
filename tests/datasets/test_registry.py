"""The registry of the 26 SpaRED datasets."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from evaluator.cli import cli
from evaluator.core.errors import DatasetNotFound
from evaluator.datasets.registry import (
    TEST_SPLIT_DATASETS,
    dataset_names,
    get_dataset,
    load_registry,
    split_table_source,
)


def test_registry_totals_match_the_paper() -> None:
    registry = load_registry()
    assert len(registry) == 26
    assert sum(d.spots for d in registry) == 308_843
    assert sum(d.slides for d in registry) == 105
    assert len({d.name for d in registry}) == 26
    assert len({d.abbreviation for d in registry}) == 26


def test_registry_facts_of_known_datasets() -> None:
    vmb = get_dataset("vicari_mouse_brain")
    assert (vmb.abbreviation, vmb.organism, vmb.tissue) == ("VMB", "mouse", "brain")
    assert (vmb.slides, vmb.patients, vmb.spots, vmb.genes) == (14, 4, 43_804, 128)
    assert (vmb.generalization, vmb.combat_key) == ("inter-patient", "patient")
    colon = get_dataset("mirzazadeh_human_colon_p1")
    assert (colon.genes, colon.combat_key) == (32, "slide_id")
    assert colon.generalization == "intra-patient"
    assert {d.genes for d in load_registry()} == {128, 32}
    assert sum(d.organism == "human" for d in load_registry()) == 14


def test_eleven_datasets_define_a_test_split() -> None:
    assert len(TEST_SPLIT_DATASETS) == 11
    assert set(dataset_names()) >= TEST_SPLIT_DATASETS
    assert get_dataset("VMB").hidden_split == "test"
    assert get_dataset("MHCP1").hidden_split == "val"
    # The four the former rule got wrong (SpaRED's readers decide).
    assert get_dataset("villacampa_mouse_brain").hidden_split == "test"
    assert get_dataset("mirzazadeh_human_small_intestine").hidden_split == "test"
    assert get_dataset("erickson_human_prostate_cancer_p2").hidden_split == "val"
    assert get_dataset("mirzazadeh_human_pediatric_brain_tumor_p1").hidden_split == "val"


def test_split_table_is_spared_readers_with_every_slide_once() -> None:
    for info in load_registry():
        slides = info.splits.slide_ids
        assert len(slides) == len(set(slides)) == info.slides, info.name
        assert info.splits.train and info.splits.val, info.name
    vmb = get_dataset("VMB").splits
    assert vmb.test == ("V11T17-101_A1", "V11T17-101_B1")
    assert len(vmb.train) == 8 and len(vmb.val) == 4
    assert get_dataset("MHCP1").splits.split_of() == {"V11M22-349_B1": "train",
                                                        "V11M22-349_A1": "val"}
    assert "spared" in split_table_source() and "Reader" in split_table_source()


@pytest.mark.parametrize("key", ["VMB", "vmb", "Vicari_Mouse_Brain", " vicari_mouse_brain "])
def test_lookup_by_name_or_abbreviation(key: str) -> None:
    assert get_dataset(key).name == "vicari_mouse_brain"


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(DatasetNotFound) as err:
        get_dataset("vicari_mouse_bran")
    assert "vicari_mouse_brain" in err.value.close_matches
    assert "did you mean" in str(err.value)
    with pytest.raises(DatasetNotFound) as err:
        get_dataset("zzz-nothing")
    assert err.value.close_matches == []


def test_cli_prints_the_registry() -> None:
    result = CliRunner().invoke(cli, ["datasets"])
    assert result.exit_code == 0, result.output
    assert "vicari_mouse_brain" in result.output
    assert "26 datasets, 105 slides, 308,843 spots" in result.output
    as_json = json.loads(CliRunner().invoke(cli, ["datasets", "--json"]).output)
    assert len(as_json) == 26
    assert {"name", "organism", "tissue", "generalization", "genes", "combat_key", "slides",
            "patients", "spots", "hidden_split"} <= set(as_json[0])
    assert as_json[0]["splits"]["test"] == ["V11T17-101_A1", "V11T17-101_B1"]
    assert as_json[0]["has_test_split"] is True


def test_cli_lists_the_slides_of_each_split() -> None:
    result = CliRunner().invoke(cli, ["datasets", "--splits"])
    assert result.exit_code == 0, result.output
    assert "villacampa_mouse_brain (hidden: test)" in result.output
    assert "  test  V19T26-039_A1" in result.output
    assert "mirzazadeh_human_colon_p1 (hidden: val)" in result.output
    assert "source: SpaRED's readers" in result.output
    table = CliRunner().invoke(cli, ["datasets"]).output
    assert "8/4/2" in table  # vicari_mouse_brain's slides per split
