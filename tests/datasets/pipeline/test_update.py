"""Data updates: only changed datasets are re-processed, and the baselines alone are queued on
the new release (store and queue on SQLite in a temporary home)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from evaluator.cli.app import main
from evaluator.core.settings import Settings
from evaluator.datasets.pipeline import PipelineError
from evaluator.datasets.pipeline.update import (
    discover_sources,
    load_state,
    raw_dir,
    update_datasets,
)
from evaluator.datasets.synthetic_raw import generate_raw

DATASETS = ("villacampa_lung_organoid", "mirzazadeh_human_colon_p1")
SPOTS = 150


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SPARED_BENCH_HOME", str(home))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{home / 'bench.db'}")
    monkeypatch.setenv("QUEUE_URL", f"sqlite:///{home / 'queue.db'}")
    monkeypatch.setenv("SPARED_BENCH_PROGRESS", "0")
    generate_raw("tiny", raw_dir(Settings.from_env()), seed=0, datasets=DATASETS,
                 patch_size=4, max_spots=SPOTS)
    yield home
    from evaluator.store import dispose_engines

    dispose_engines()


def _jobs(engine: Any, run: int = 0) -> list[tuple[str, str, str, str]]:
    """(submission name, release id, dataset, track) of every job of a run (0: the ranked one).

    Publishing a release queues each baseline's jobs twice: run 0, ranked, and run 1, the
    reproducibility re-run.
    """
    from evaluator.store import Job, Submission, session_scope

    with session_scope(engine) as session:
        rows = session.exec(select(Job, Submission).where(
            col(Job.submission_id) == col(Submission.id), col(Job.run) == run)).all()
        return sorted((s.name, j.release_id, j.dataset, j.track) for j, s in rows)


def _current(engine: Any) -> str:
    from evaluator.store import current_release, session_scope

    with session_scope(engine) as session:
        record = current_release(session)
        assert record is not None
        return record.release_id


def test_update_reprocesses_the_changed_dataset_and_requeues_only_baselines(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evaluator.store import open_store
    from tests.store.factories import add_submission

    settings = Settings.from_env()
    engine = open_store(settings.resolved_database_url)
    add_submission(engine, team="baselines", name="mean", baseline=True)
    add_submission(engine, team="baselines", name="ridge", baseline=True)
    add_submission(engine, team="lab", name="entry")

    assert main(["data", "update", "--label", "first"]) == 0
    first_out = capsys.readouterr().out
    assert "processed 2 dataset(s)" in first_out and "reused 0" in first_out
    first = _current(engine)
    entries = [(d, t) for d in sorted(DATASETS) for t in ("raw", "spackle")]
    assert _jobs(engine) == sorted((name, first, d, t) for name in ("mean", "ridge")
                                   for d, t in entries)
    states = {d: load_state(settings, d) for d in DATASETS}
    assert all(s is not None for s in states.values())

    # A new raw input for one dataset (another sample: other counts, other spots).
    generate_raw("tiny", raw_dir(settings), seed=9, datasets=[DATASETS[1]], patch_size=4,
                 max_spots=SPOTS)
    assert main(["data", "update", "--label", "second"]) == 0
    out = capsys.readouterr().out
    assert f"processed 1 dataset(s) ({DATASETS[1]}), reused 1" in out
    second = _current(engine)
    assert second != first
    after = {d: load_state(settings, d) for d in DATASETS}
    assert after[DATASETS[0]] == states[DATASETS[0]]  # not recomputed: same state, same output
    assert after[DATASETS[1]].input_sha256 != states[DATASETS[1]].input_sha256
    jobs = _jobs(engine)
    assert {name for name, *_ in jobs} == {"mean", "ridge"}  # never the team's entry
    new_jobs = [j for j in jobs if j[1] == second]
    assert new_jobs == sorted((name, second, d, t) for name in ("mean", "ridge")
                              for d, t in entries)
    assert len(jobs) == 2 * len(new_jobs)  # the first release's jobs stay as they were
    assert _jobs(engine, run=1) == jobs  # and each baseline is re-run once per release
    assert "queued 4 job(s) of baseline baselines/mean" in out

    log = json.loads((home / "pipeline" / "changelogs" / f"{second}.json").read_text())
    status = {d["dataset"]: d for d in log["datasets"]}
    assert log["previous_release_id"] == first
    assert status[DATASETS[0]]["status"] == "unchanged"
    changed = status[DATASETS[1]]
    assert changed["status"] == "changed"
    assert changed["public_spots"][0] != changed["public_spots"][1] or changed["genes_added"]
    assert f"changed  {DATASETS[1]}" in out

    # A configuration change re-processes that dataset alone.
    (raw_dir(settings) / f"{DATASETS[0]}.config.json").write_text('{"cell_min_counts": 12}')
    updates = update_datasets(settings)
    assert [(u.dataset, u.action, u.reason) for u in updates] == [  # sorted by name
        (DATASETS[1], "reused", "input and configuration unchanged"),
        (DATASETS[0], "processed", "configuration changed"),
    ]
    # Nothing changed since: every dataset is reused and the release is the same content.
    assert all(u.action == "reused" for u in update_datasets(settings))


def test_an_unchanged_update_publishes_nothing_new(home: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "update", "--dataset", "VLO", "--no-publish"]) == 0
    capsys.readouterr()
    assert main(["data", "update", "--dataset", "VLO", "--no-publish"]) == 0
    out = capsys.readouterr().out
    assert "processed 0 dataset(s), reused 1" in out
    assert "already had release" in out and "0 of 1 dataset(s) changed" in out


def test_registered_inputs_are_checked(tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    assert discover_sources(tmp_path / "absent") == []
    (folder / "VLO.h5ad").write_bytes(b"")
    (folder / "notes.txt").write_text("ignored")
    (folder / ".partial.tmp.h5ad").write_bytes(b"")
    sources = discover_sources(folder)
    assert [(s.dataset, s.input_path.name, s.config_path) for s in sources] == [
        ("villacampa_lung_organoid", "VLO.h5ad", None)]
    (folder / "villacampa_lung_organoid.sources.json").write_text("{}")
    with pytest.raises(PipelineError, match="expected one input per dataset, found two"):
        discover_sources(folder)
    (folder / "villacampa_lung_organoid.sources.json").unlink()
    (folder / "MHCP1.config.json").write_text("{}")
    with pytest.raises(PipelineError, match=r"configs without one: MHCP1\.config\.json"):
        discover_sources(folder)
    (folder / "MHCP1.config.json").unlink()
    (folder / "no_such_dataset.h5ad").write_bytes(b"")
    with pytest.raises(PipelineError, match="expected a raw input named after a registry"):
        discover_sources(folder)


def test_update_without_inputs_says_where(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with pytest.raises(PipelineError, match="synth-raw"):
        update_datasets(settings)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "VLO.h5ad").write_bytes(b"")
    with pytest.raises(PipelineError, match="expected raw inputs for mirzazadeh_human_colon_p1"):
        update_datasets(settings, datasets=["MHCP1"])
