"""Predictions files that quote too much or cannot be opened (issue 17): short, clean errors."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from evaluator.scoring import PredictionError, load_predictions
from evaluator.scoring.predictions import MAX_FOUND_CHARS


def test_a_long_header_is_not_copied_into_the_message(tmp_path: Path) -> None:
    text = ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
            + "'junk': '" + "A" * 9000 + "'}").encode()
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    path = tmp_path / "predictions.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text)
    with pytest.raises(PredictionError) as raised:
        load_predictions(path, expected_shape=(2, 3))
    assert len(raised.value.found) < MAX_FOUND_CHARS + 100
    assert "A" * 300 not in str(raised.value)


def test_a_structured_dtype_with_long_names_is_cut(tmp_path: Path) -> None:
    dtype = np.dtype([("n" * 5000, "<f4")])
    path = tmp_path / "predictions.npy"
    np.save(path, np.zeros(3, dtype=dtype))
    with pytest.raises(PredictionError, match="dtype") as raised:
        load_predictions(path)
    assert len(raised.value.found) < MAX_FOUND_CHARS + 100


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_a_file_the_evaluator_cannot_open_is_a_clean_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "predictions.npy"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        np.save(tmp_path / "real.npy", np.zeros((2, 3), dtype=np.float32))
        path.symlink_to(tmp_path / "real.npy")
    else:
        path.mkdir()
    with pytest.raises(PredictionError) as raised:
        load_predictions(path, expected_shape=(2, 3))
    message = str(raised.value.found)
    assert {"fifo": "special file", "symlink": "a symlink", "directory": "a directory"}[kind] \
        in message
    assert str(tmp_path) not in raised.value.found


def test_a_file_without_read_permission(tmp_path: Path) -> None:
    path = tmp_path / "predictions.npy"
    np.save(path, np.zeros((2, 3), dtype=np.float32))
    path.chmod(0)
    if os.geteuid() == 0:  # root reads it regardless of its mode
        assert load_predictions(path, expected_shape=(2, 3)).shape == (2, 3)
        return
    with pytest.raises(PredictionError, match=r"unreadable one \(Permission denied\)") as raised:
        load_predictions(path, expected_shape=(2, 3))
    assert str(tmp_path) not in raised.value.found
