"""Author-controlled text, made safe where it goes: the store, figures, CSV, the terminal.

Storable (``clean_text``, ``clean_json``): submissions write logs, file names and model cards;
authors name their entries. Postgres refuses NUL in text and ``NaN``/``Infinity`` in JSON; no
UTF-8 encoder takes a lone surrogate (how Python spells a file name's undecodable bytes, or a
JSON ``"\\ud800"`` escape); a deeply nested value exhausts the recursion of every JSON encoder.
These are cleaned where they enter (the job pipeline, the store's writes) so a finished result
is never lost to its bytes.

Printable (``escape_controls``): a model's log, a file name it wrote under /output, a
submission's name or an archive's config reach the author's and the operator's terminal. Raw,
their control sequences would set the window title, write the clipboard (OSC 52), move the
cursor or rewrite a line into a fake ``PASS``. Every C0 control (but tab, and newline where
asked), DEL, every C1 control and the bidirectional overrides become a visible escape
(``\\x1b``, ``\\u202e``), so the text still says what it held.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from typing import Any

__all__ = [
    "MAX_JSON_DEPTH",
    "REPLACEMENT",
    "EscapingFormatter",
    "JsonDepthError",
    "clean_json",
    "clean_text",
    "csv_cell",
    "escape_controls",
    "json_depth",
    "name_problem",
    "xml_text",
]

REPLACEMENT = "\ufffd"
"""What a character the store cannot hold becomes (U+FFFD REPLACEMENT CHARACTER)."""

MAX_JSON_DEPTH = 32
"""Deepest nesting of objects and arrays kept from an author's JSON (model.json)."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Characters XML 1.0 does not allow anywhere (C0 controls but tab, newline and return; lone
# surrogates; U+FFFE, U+FFFF); C1 controls and DEL are allowed but shown as nothing useful.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;"}
_XML_SPECIAL = re.compile("[&<>'\"]")

# Bidirectional overrides and isolates, zero-width and invisible formatting characters: they
# make a name display as something else ("gnp.exe" shown as "exe.png").
_DECEPTIVE = frozenset(
    "\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062"
    "\u2063\u2064\u2066\u2067\u2068\u2069\u206a\u206b\u206c\u206d\u206e\u206f\ufeff\u00ad"
    "\u180e\u034f")


class JsonDepthError(ValueError):
    """A JSON value nested deeper than allowed."""


def clean_text(text: str) -> str:
    """Replace NUL and lone surrogates (unstorable in Postgres, unencodable as UTF-8) with U+FFFD.

    Everything else is kept: a log's newlines, tabs and escape sequences are the author's
    output (terminals are protected where text is printed, not here).
    """
    return _UNSTORABLE.sub(REPLACEMENT, text) if _UNSTORABLE.search(text) else text


def xml_text(text: str) -> str:
    """``text`` safe inside XML content and inside single- or double-quoted attributes.

    Escapes ``& < > ' "``; characters XML cannot hold (controls, lone surrogates) become U+FFFD.
    """
    text = _NOT_XML.sub(REPLACEMENT, str(text))
    return _XML_SPECIAL.sub(lambda m: _XML_ESCAPES[m.group(0)], text)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: None as empty; a string starting with ``=``,
    ``+``, ``-``, ``@``, tab or carriage return gets a leading ``'`` (OWASP's CSV injection
    advice); numbers and other values as they are."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    if isinstance(value, list | tuple | dict):
        return csv_cell(str(value))
    return value


def json_depth(value: Any, *, limit: int = MAX_JSON_DEPTH) -> int:
    """The nesting depth of a parsed JSON value (scalars 0), iteratively; stops past ``limit``.

    Raises ``JsonDepthError`` once the depth passes ``limit``.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            if depth > limit:
                raise JsonDepthError(f"expected JSON nested at most {limit} levels deep, "
                                     f"found deeper nesting")
            deepest = max(deepest, depth)
            stack.extend((v, depth) for v in (item.values() if isinstance(item, dict)
                                               else item))
    return deepest


def clean_json(value: Any, *, limit: int = MAX_JSON_DEPTH) -> Any:
    """A copy of a JSON value every store can hold: strings (and keys) through ``clean_text``,
    non-finite floats as None, other values as they are.

    Raises ``JsonDepthError`` past ``limit`` levels of nesting (checked before any recursion).
    """
    json_depth(value, limit=limit)
    return _clean(value)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an entry or a team (None when it can).

    Refused: control characters (C0, DEL, C1, line and paragraph separators), lone surrogates,
    bidirectional overrides and isolates, zero-width and other invisible format characters,
    and leading or trailing white space.
    """
    for ch in name:
        category = unicodedata.category(ch)
        if category in {"Cc", "Cs", "Zl", "Zp"} or ch in _DECEPTIVE or (
                category == "Cf"):
            return (f"expected printable characters without control, bidirectional or "
                    f"zero-width ones, found U+{ord(ch):04X} ({_char_name(ch)})")
    if name != name.strip():
        return "expected no leading or trailing white space, found some"
    return None


def _char_name(ch: str) -> str:
    try:
        return unicodedata.name(ch).lower()
    except ValueError:
        return unicodedata.category(ch)


_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                       "\u2066-\u2069]|\n")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control characters written as visible escapes (tab kept).

    With ``keep_newlines`` a ``\\n`` stays a line break (for a log printed as lines); every
    other control, ``\\r`` included, is escaped.
    """
    if keep_newlines:
        return _CONTROLS.sub(lambda m: m.group() if m.group() == "\n" else _escape(m), text)
    return _CONTROLS.sub(_escape, text)


class EscapingFormatter(logging.Formatter):
    """A log formatter whose records cannot carry terminal controls (a job's message, say)."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record), keep_newlines=True)
