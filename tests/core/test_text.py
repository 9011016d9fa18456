"""Author text made storable, printable in XML and CSV, and names checked."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from evaluator.core.text import (
    JsonDepthError,
    clean_json,
    clean_text,
    csv_cell,
    json_depth,
    name_problem,
    xml_text,
)


def test_clean_text_replaces_only_what_no_store_holds() -> None:
    assert clean_text("a\x00b\ud800c\udfff") == "a\ufffdb\ufffdc\ufffd"
    kept = "tab\tnewline\n\x1b[31mescape\u202e bidi é 😀"
    assert clean_text(kept) is kept
    clean_text("x\udcff").encode("utf-8")  # encodable once cleaned


def test_clean_json_cleans_keys_values_and_non_finite_numbers() -> None:
    value = {"k\x00": [1.5, float("nan"), float("-inf"), {"v": "\ud83d"}], "n": None, "b": True}
    cleaned = clean_json(value)
    assert cleaned == {"k\ufffd": [1.5, None, None, {"v": "\ufffd"}], "n": None, "b": True}
    json.dumps(cleaned, allow_nan=False).encode("utf-8")


def test_json_depth_is_iterative_and_bounded() -> None:
    deep: list = []
    node = deep
    for _ in range(100_000):  # far past Python's recursion limit
        node.append([])
        node = node[0]
    with pytest.raises(JsonDepthError, match="at most 32 levels"):
        json_depth(deep)
    assert json_depth({"a": [1, {"b": 2}]}) == 3
    assert json_depth(7) == 0


@pytest.mark.parametrize("quote", ["'", '"'])
def test_xml_text_is_safe_in_content_and_either_attribute_quote(quote: str) -> None:
    hostile = "x' onload='a()' y=\"<b>&\x01\x7f\ud800"
    document = f"<svg a={quote}{xml_text(hostile)}{quote}><t>{xml_text(hostile)}</t></svg>"
    root = ET.fromstring(document)
    assert list(root.attrib) == ["a"]
    assert root.attrib["a"] == root.find("t").text == "x' onload='a()' y=\"<b>&\ufffd\ufffd\ufffd"


@pytest.mark.parametrize(("value", "shown"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-cmd", "'-cmd"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("plain", "plain"), (-1.5, -1.5), (3, 3), (None, ""),
])
def test_csv_cell_quotes_formula_starts(value: object, shown: object) -> None:
    assert csv_cell(value) == shown


@pytest.mark.parametrize("name", ["vit-delta", "Réseau 2", "模型", "a.b_c"])
def test_plain_names_pass(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(("name", "code"), [
    ("a\x00", "U+0000"), ("a\x1b[2J", "U+001B"), ("a\x85", "U+0085"),
    ("png\u202egpj.exe", "U+202E"),
    ("a\u2066b", "U+2066"), ("zero\u200bwidth", "U+200B"), ("bom\ufeff", "U+FEFF"),
    ("line\u2028sep", "U+2028"), ("lone\ud800", "U+D800"),
])
def test_deceptive_names_are_refused(name: str, code: str) -> None:
    problem = name_problem(name)
    assert problem is not None and code in problem
    assert name_problem(" padded") is not None
