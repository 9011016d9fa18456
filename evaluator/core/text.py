"""Author text made safe for a terminal: control characters shown, never obeyed.

A model's log, a file name it wrote under /output, a submission's name or an archive's config
reach the author's and the operator's terminal. Raw, their control sequences would set the
window title, write the clipboard (OSC 52), move the cursor or rewrite a line into a fake
``PASS``. ``escape_controls`` replaces every C0 control (but tab, and newline where asked),
DEL, every C1 control and the bidirectional overrides with a visible escape (``\\x1b``,
``\\u202e``), so the text still says what it held.
"""

from __future__ import annotations

import logging
import re

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
