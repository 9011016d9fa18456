"""The ``score`` and ``stats`` commands, good and bad input (click's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner, Result

from evaluator.cli import scoring_cmds
from evaluator.core.errors import BenchError


@click.group()
def _root() -> None:
    """Stand-in root group holding exactly the scoring commands."""


for _command in scoring_cmds.COMMANDS:
    _root.add_command(_command)


def _invoke(args: list[str]) -> Result:
    return CliRunner().invoke(_root, args, catch_exceptions=True)


@pytest.fixture
def truth_npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    truth = rng.random((20, 4)).astype(np.float32)
    mask = rng.random((20, 4)) < 0.8
    np.savez(tmp_path / "truth.npz", truth=truth, mask=mask, genes=np.array(list("ABCD")))
    np.save(tmp_path / "pred.npy", (truth + 0.1).astype(np.float32))
    return tmp_path / "truth.npz"


def test_commands_are_registered() -> None:
    assert {c.name for c in scoring_cmds.COMMANDS} == {"score", "stats"}


def test_score_json_and_per_gene_csv(truth_npz: Path) -> None:
    out_csv = truth_npz.parent / "genes.csv"
    result = _invoke(["score", "--truth", str(truth_npz), "--pred",
                      str(truth_npz.parent / "pred.npy"), "--json", "--per-gene", str(out_csv)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["metrics"]["mse"] == pytest.approx(0.01, rel=1e-5)
    assert data["provenance"]["track"] == "raw"
    assert data["provenance"]["dataset"] == "truth"
    lines = out_csv.read_text().splitlines()
    assert lines[0] == "gene,n,pcc,r2,mse,mae"
    assert [line.split(",")[0] for line in lines[1:]] == list("ABCD")


def test_score_text_output(truth_npz: Path) -> None:
    result = _invoke(["score", "--truth", str(truth_npz), "--pred",
                      str(truth_npz.parent / "pred.npy")])
    assert result.exit_code == 0, result.output
    assert "PCC-Gene" in result.output and "measured entries" in result.output


@pytest.mark.parametrize(("write", "needle"), [
    ("float64", "expected float32, found float64"),
    ("shape", "expected (n_test_spots, n_genes) = (20, 4), found (20, 3)"),
    ("nan", "NaN"),
    ("missing", "no such file"),
])
def test_score_rejects_bad_predictions_with_a_message(
    truth_npz: Path, write: str, needle: str
) -> None:
    pred = truth_npz.parent / "bad.npy"
    if write == "float64":
        np.save(pred, np.zeros((20, 4)))
    elif write == "shape":
        np.save(pred, np.zeros((20, 3), dtype=np.float32))
    elif write == "nan":
        np.save(pred, np.full((20, 4), np.nan, dtype=np.float32))
    result = _invoke(["score", "--truth", str(truth_npz), "--pred", str(pred)])
    assert result.exit_code != 0
    assert isinstance(result.exception, BenchError)
    assert needle in str(result.exception)
    assert str(pred) in str(result.exception)


def test_score_rejects_bad_truth(tmp_path: Path) -> None:
    np.save(tmp_path / "p.npy", np.zeros((2, 2), dtype=np.float32))
    result = _invoke(["score", "--truth", str(tmp_path / "none.h5ad"),
                      "--pred", str(tmp_path / "p.npy")])
    assert isinstance(result.exception, BenchError)
    assert "no such file" in str(result.exception)


def _write_results(path: Path) -> None:
    lines = ["entry,dataset,mse,pcc_gene,track"]
    for i, entry in enumerate(["good", "mid", "bad"]):
        for d in range(8):
            lines.append(f"{entry},ds{d},{1 + i * 3 + 0.01 * d},{0.5 - 0.1 * i},raw")
    lines.append("partial,ds0,1.0,0.9,raw")
    path.write_text("\n".join(lines) + "\n")


def test_stats_text_json_and_cd_svg(tmp_path: Path) -> None:
    csv = tmp_path / "results.csv"
    _write_results(csv)
    svg = tmp_path / "cd.svg"
    result = _invoke(["stats", str(csv), "--cd-svg", str(svg)])
    assert result.exit_code == 0, result.output
    assert "incomplete (not ranked): partial: missing 7 of 8 datasets" in result.output
    assert "Kruskal-Wallis" in result.output and "Friedman" in result.output
    assert svg.read_text().startswith("<svg")
    result = _invoke(["stats", str(csv), "--json"])
    data = json.loads(result.output)
    assert [e["entry"] for e in data["entries"] if e["complete"]] == ["good", "mid", "bad"]
    assert data["entries"][0]["rank"] == 1 and data["entries"][0]["group"] == 1


@pytest.mark.parametrize(("content", "needle"), [
    (None, "no such file"),
    ("entry,dataset\nA,a\n", "expected columns ['entry', 'dataset', 'mse']"),
    ("entry,dataset,mse,track\nA,a,1,raw\nA,a,2,spackle\n", "choose with --track"),
])
def test_stats_rejects_bad_tables(tmp_path: Path, content: str | None, needle: str) -> None:
    csv = tmp_path / "r.csv"
    if content is not None:
        csv.write_text(content)
    result = _invoke(["stats", str(csv)])
    assert isinstance(result.exception, BenchError)
    assert needle in str(result.exception)


def test_main_prints_bench_errors_without_traceback(
    truth_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evaluator.cli.app import main

    pred = truth_npz.parent / "bad.npy"
    np.save(pred, np.zeros((20, 4)))
    code = main(["score", "--truth", str(truth_npz), "--pred", str(pred)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: predictions ") and "found float64" in err
    assert "Traceback" not in err
