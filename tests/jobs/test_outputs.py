"""Bad outputs get the specific author-facing message (through the local runner: no engine)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from evaluator.jobs import LocalExecutor, TaskSettings, run_staged_job, stage_validation_inputs
from evaluator.runners import RunLimits

HEADER = """
import json, os, sys, numpy as np
task = json.load(open(os.path.join(os.environ["SPARED_INPUT_DIR"], "task.json")))
n, g = task["n_test_spots"], len(task["genes"])
out = os.environ["SPARED_OUTPUT_DIR"]
good = np.zeros((n, g), dtype=np.float32)
"""

CASES = {
    "float64": ("np.save(out + '/predictions.npy', good.astype(np.float64))", "output_invalid",
                "/output/predictions.npy: dtype: expected float32, found float64 "
                "(save with preds.astype(np.float32))"),
    "transposed": ("np.save(out + '/predictions.npy', good.T.copy())", "output_invalid",
                   "/output/predictions.npy: shape: expected (n_test_spots, n_genes) = ({n}, {g})"
                   ", found ({g}, {n}) (transposed? rows must be spots, columns genes)"),
    "nan": ("bad = good.copy(); bad[3, 2] = np.nan; bad[4, 0] = np.inf; "
            "np.save(out + '/predictions.npy', bad)", "output_invalid",
            "/output/predictions.npy: values: expected all values finite, found 1 NaN and 1 inf,"
            " first at (spot, gene) (3, 2)"),
    "not_npy": ("open(out + '/predictions.npy', 'w').write('1,2,3')", "output_invalid",
                "/output/predictions.npy: format: expected a NumPy .npy file (written with "
                "np.save), found a file without the .npy header"),
    "too_big": ("np.save(out + '/predictions.npy', np.zeros((n, g + 2000), np.float32))",
                "output_invalid",
                "/output/predictions.npy: size: expected at most {max_bytes} bytes, found"),
    "missing": ("np.save(out + '/preds.npy', good)", "output_missing",
                "expected /output/predictions.npy, found no such file (/output holds preds.npy)"),
    "crash": ("print('loading model'); raise SystemExit('weights not found')", "exit_nonzero",
              "expected exit code 0, found 1"),
}


@pytest.fixture(scope="module")
def staged(tiny_release, tmp_path_factory: pytest.TempPathFactory):
    return stage_validation_inputs(tiny_release, "villacampa_lung_organoid", "raw",
                                   TaskSettings(time_limit_s=20),
                                   tmp_path_factory.mktemp("staging"))


def _run(staged, tmp_path: Path, body: str, limits: RunLimits | None = None):
    script = tmp_path / "predict.py"
    script.write_text(HEADER + body + "\n")
    executor = LocalExecutor(f"{sys.executable} {script}")
    return run_staged_job(executor, staged, limits or RunLimits(timeout_s=20), work_dir=tmp_path)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_output_gets_its_message(staged, tmp_path: Path, case: str) -> None:
    body, status, message = CASES[case]
    result = _run(staged, tmp_path, body)
    n, g = staged.task.predictions_shape
    assert result.status == status
    expected = message.format(n=n, g=g, max_bytes=n * g * 4 + 4096)
    assert result.message.startswith(expected), result.message
    assert result.score is None and not result.succeeded
    if case == "crash":
        assert "loading model" in result.log_tail and "weights not found" in result.log_tail


def test_good_output_is_scored_and_a_bad_model_card_is_only_a_note(staged,
                                                                  tmp_path: Path) -> None:
    body = ("np.save(out + '/predictions.npy', good + 1)\n"
            "open(out + '/model.json', 'w').write(json.dumps({'name': 'x', 'size': 3}))")
    result = _run(staged, tmp_path, body)
    assert result.status == "succeeded" and result.score is not None
    assert result.score.n_spots == staged.task.n_test_spots
    assert result.score.provenance.release_id == staged.release_id
    assert result.model_card is None
    assert any("/output/model.json: key 'size': expected no such key" in n for n in result.notes)
    assert result.timings.model_s > 0 and result.timings.total_s >= result.timings.model_s


def test_time_limit(staged, tmp_path: Path) -> None:
    result = _run(staged, tmp_path, "import time; time.sleep(30)", RunLimits(timeout_s=1))
    assert result.status == "timed_out"
    assert result.message.startswith("expected the job to finish within 1 s")
