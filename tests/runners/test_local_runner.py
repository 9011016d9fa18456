"""The local process runner: no isolation, but the same statuses, time and output limits."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evaluator.runners import RunLimits, run_local

WRITE_PREDICTIONS = (
    "import os, numpy as np; "
    "np.save(os.path.join(os.environ['OUTPUT_DIR'], 'predictions.npy'), "
    "np.ones((3, 2), np.float32)); print('input is', os.environ['INPUT_DIR'])"
)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "in").mkdir()
    return tmp_path / "in", tmp_path / "out"


def test_local_success_and_no_isolation_warning(dirs, caplog):
    with caplog.at_level(logging.WARNING, logger="evaluator.runners.local_runner"):
        outcome = run_local([sys.executable, "-c", WRITE_PREDICTIONS], *dirs, RunLimits())
    assert outcome.status == "succeeded", outcome
    assert outcome.runner == "local"
    assert np.load(dirs[1] / "predictions.npy").shape == (3, 2)
    assert f"input is {dirs[0].resolve()}" in outcome.log_tail
    assert "NO isolation" in caplog.text
    assert outcome.notes == ["local runner: no isolation"]


def test_local_timeout_kills_the_process_group(dirs, tmp_path):
    marker = tmp_path / "child-survived"
    code = (f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
            f"'import time; time.sleep(3); open(\"{marker}\", \"w\").close()']); "
            "import time; time.sleep(60)")
    start = time.perf_counter()
    outcome = run_local([sys.executable, "-c", code], *dirs, RunLimits(timeout_s=1))
    assert outcome.status == "timed_out"
    assert time.perf_counter() - start < 10
    time.sleep(3.5)
    assert not marker.exists()


def test_local_exit_code_missing_command_and_big_output(dirs, tmp_path):
    failed = run_local(f"{sys.executable} -c \"import sys; print('boom', file=sys.stderr); "
                       "sys.exit(4)\"", *dirs, RunLimits())
    assert (failed.status, failed.exit_code) == ("exit_nonzero", 4)
    assert "boom" in failed.log_tail

    missing = run_local(["/nonexistent/predict"], dirs[0], tmp_path / "out2", RunLimits())
    assert missing.status == "image_missing"

    big = run_local([sys.executable, "-c", "import os; open(os.environ['OUTPUT_DIR'] + "
                     "'/predictions.npy', 'wb').write(b'0' * 3 * 2**20)"],
                    dirs[0], tmp_path / "out3", RunLimits(output_max_mb=1))
    assert big.status == "output_invalid"
    assert "expected at most 1 MB" in big.message
