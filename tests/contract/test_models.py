"""The contract models accept valid task/model json and reject bad ones with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator.contract import (
    CONTRACT_VERSION,
    MAX_CONTRACT_JSON_BYTES,
    ContractError,
    TaskSpec,
    contract_json_schemas,
    parse_model_card,
    parse_task,
    read_model_card,
    read_task,
    task_json,
)

VALID = {
    "contract_version": 1, "dataset": "villacampa_lung_organoid", "track": "raw",
    "genes": ["G1", "G2", "G3"], "n_test_spots": 5, "patch_shape": [8, 8, 3],
    "time_limit_s": 60, "device": "cpu", "seed": 0,
}


def _error(data: object) -> ContractError:
    with pytest.raises(ContractError) as info:
        parse_task(data if isinstance(data, (bytes, str)) else json.dumps(data))
    return info.value


def test_valid_task_round_trips_through_json(tmp_path: Path) -> None:
    task = parse_task(VALID)
    assert task.predictions_shape == (5, 3)
    assert task.predictions_max_bytes == 5 * 3 * 4 + 4096
    path = tmp_path / "task.json"
    path.write_text(task_json(task))
    assert read_task(path) == task
    assert json.loads(path.read_text()) == {**VALID, "time_limit_s": 60.0}
    assert CONTRACT_VERSION == 1


@pytest.mark.parametrize(("change", "key", "expected"), [
    ({"track": "rw"}, "track", "expected 'raw' or 'spackle', found \"rw\""),
    ({"device": "gpu"}, "device", "expected 'cuda' or 'cpu', found \"gpu\""),
    ({"n_test_spots": 0}, "n_test_spots", "found 0"),
    ({"genes": ["A", "B", "A"]}, "genes", "expected unique gene names, found repeated ['A']"),
    ({"genes": []}, "genes", "found []"),
    ({"patch_shape": [8, 8, 4]}, "patch_shape",
     "expected [H, W, 3] with H, W > 0, found [8, 8, 4]"),
    ({"time_limit_s": -1}, "time_limit_s", "found -1"),
    ({"seed": -3}, "seed", "found -3"),
    ({"dataset": ""}, "dataset", 'found ""'),
])
def test_bad_values_are_named_with_what_was_found(change: dict, key: str, expected: str) -> None:
    error = _error({**VALID, **change})
    assert error.problems == [error.problems[0]]
    assert error.problems[0].startswith(f"key {key!r}: expected ")
    assert expected in str(error)


def test_missing_and_extra_keys_are_listed_each() -> None:
    data = {k: v for k, v in VALID.items() if k not in ("genes", "seed")}
    data["weights_url"] = "http://example.org"
    error = _error(data)
    assert "3 problems" in str(error)
    assert "key 'genes': expected it present, found it missing" in error.problems
    assert "key 'seed': expected it present, found it missing" in error.problems
    assert any(p.startswith("key 'weights_url': expected no such key") for p in error.problems)


def test_unknown_contract_version_is_reported_alone() -> None:
    error = _error({"contract_version": 2, "anything": "else"})
    assert str(error) == "task.json: key 'contract_version': expected one of [1], found 2"


@pytest.mark.parametrize(("text", "expected"), [
    ("{not json", "task.json: expected valid JSON, found "),
    ("[1, 2]", "task.json: expected a JSON object, found list"),
])
def test_unparseable_task_json(text: str, expected: str) -> None:
    assert str(_error(text)).startswith(expected)


def test_task_file_problems_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"task.json: expected a file, found no such file"):
        read_task(tmp_path / "task.json")
    big = tmp_path / "big.json"
    big.write_text(" " * (MAX_CONTRACT_JSON_BYTES + 1))
    with pytest.raises(ContractError, match=rf"big.json: expected at most "
                                            rf"{MAX_CONTRACT_JSON_BYTES} bytes, found"):
        read_task(big)


def test_model_card_accepts_the_documented_keys_only(tmp_path: Path) -> None:
    card = parse_model_card({"name": "ridge", "parameters": {"alpha": 10, "features": [1, 2]},
                             "notes": "n"})
    assert card.parameters["alpha"] == 10
    assert parse_model_card('{"name": "m"}').parameters == {}
    with pytest.raises(ContractError) as info:
        parse_model_card({"name": "", "weights": 3})
    assert "key 'name': expected a string with at least 1 character" in str(info.value)
    assert "key 'weights': expected no such key" in str(info.value)
    path = tmp_path / "model.json"
    path.write_text('{"name": 5}')
    with pytest.raises(ContractError, match=r"model.json: key 'name': expected a valid string"):
        read_model_card(path)


def test_json_schemas_list_the_required_task_keys() -> None:
    schema = contract_json_schemas()["task.json"]
    assert set(schema["required"]) == set(VALID)
    # limits: optional, added within version 1 (the service's limits, when it states them)
    assert set(TaskSpec.model_fields) == set(VALID) | {"limits"}
    assert "limits" in schema["properties"]


@pytest.mark.parametrize(("text", "expected"), [
    ('{"name": "m", "parameters": {"lr": NaN}}', "NaN (not valid JSON"),
    ('{"name": "m", "parameters": {"lr": -Infinity}}', "-Infinity (not valid JSON"),
    ('{"name": "m", "parameters": {"deep": ' + "[" * 20_000 + "]" * 20_000 + "}}",
     "expected JSON nested a few levels deep"),
    ('{"name": "m", "parameters": {"deep": ' + "[" * 40 + "]" * 40 + "}}",
     "expected JSON nested at most 32 levels deep"),
])
def test_model_card_refuses_what_no_store_can_hold(text: str, expected: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_model_card(text)
    assert expected in str(info.value)


def test_model_card_strings_are_made_storable() -> None:
    card = parse_model_card('{"name": "m\\u0000x", "parameters": {"k\\ud800": "v\\udfff"},'
                            ' "notes": "a\\u0000"}')
    assert card.name == "m\ufffdx" and card.notes == "a\ufffd"
    assert card.parameters == {"k\ufffd": "v\ufffd"}
    card.model_dump_json()  # encodable as UTF-8
