"""The pipeline's commands: `data synth-raw`, `data process` and their error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator.cli.app import main
from evaluator.datasets.schema import check_dataset, read_h5ad


def test_synth_raw_then_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw_dir = tmp_path / "raw"
    assert main(["data", "synth-raw", "--datasets", "MHCP1", "--out", str(raw_dir),
                 "--patch-size", "4"]) == 0
    raw = raw_dir / "mirzazadeh_human_colon_p1.h5ad"
    assert raw.is_file()
    capsys.readouterr()
    out = tmp_path / "processed.h5ad"
    config = tmp_path / "config.toml"
    config.write_text("n_hops = 3\n")
    assert main(["data", "process", str(raw), "--dataset", "MHCP1", "--config", str(config),
                 "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert [s["name"] for s in report["steps"]][:3] == ["filter_spots", "filter_genes",
                                                         "drop_empty_spots"]
    assert "mirzazadeh_human_colon_p1: top_genes" in captured.err
    adata = read_h5ad(out)
    check_dataset(adata, str(out), expected_genes=32, require_completed=True)
    config_json = json.loads(adata.uns["spared_bench"]["config_json"])
    assert config_json["n_hops"] == 3 and config_json["mode"] == "spared"
    assert config_json["cell_min_counts"] == 10 and config_json["organism"] == "human"
    assert {"noisy_c_d_log1p", "noisy_c_t_deltas"} <= set(adata.layers)
    hexed = tmp_path / "hexed.h5ad"
    assert main(["data", "process", str(raw), "--dataset", "MHCP1", "--mode", "exact-hex",
                 "--out", str(hexed), "--json"]) == 0
    capsys.readouterr()
    assert json.loads(read_h5ad(hexed).uns["spared_bench"]["config_json"])["mode"] == "exact-hex"


def test_process_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "process", str(tmp_path / "absent.h5ad"), "--dataset", "VLO"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "absent.h5ad: expected a raw .h5ad" in last
    (tmp_path / "c.json").write_text('{"n_hops": 0}')
    (tmp_path / "raw.h5ad").write_bytes(b"not hdf5")
    assert main(["data", "process", str(tmp_path / "raw.h5ad"), "--dataset", "VLO",
                 "--config", str(tmp_path / "c.json")]) == 2
    assert "n_hops: expected a valid value" in capsys.readouterr().err
