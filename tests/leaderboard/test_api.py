"""The JSON/CSV API: shapes, numbers recomputed from the stored results, CSV, errors, caching
against new results, hiding entries."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest

from leaderboard.schemas import (
    DatasetOut,
    DatasetsOut,
    EntryOut,
    LeaderboardOut,
    ReleasesOut,
    ResultsOut,
    SignificanceOut,
)
from tests.leaderboard.conftest import LeaderboardEnv
from tests.leaderboard.seed import TINY_DATASETS, EntrySpec, _evaluate


def rows_csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.mark.parametrize("track", ["raw", "spackle"])
def test_leaderboard_numbers_match_the_stored_results(env: LeaderboardEnv, track: str) -> None:
    client = env.client()
    board = LeaderboardOut.model_validate(client.get(f"/api/leaderboard?track={track}")
                                          .get_json())
    results = client.get(f"/api/results?track={track}").get_json()["rows"]
    complete = [e.entry for e in board.entries]
    mse = np.array([[next(r["mse"] for r in results if r["entry"] == e and r["dataset"] == d)
                     for e in complete] for d in board.datasets])
    normalized = mse / mse.min(axis=1, keepdims=True)
    for i, entry in enumerate(board.entries):
        assert entry.mean_normalized_mse == pytest.approx(normalized[:, i].mean(), rel=1e-12)
        assert entry.std_normalized_mse == pytest.approx(normalized[:, i].std(ddof=1), rel=1e-9)
        assert entry.mean_mse == pytest.approx(mse[:, i].mean(), rel=1e-12)
        assert entry.datasets_won == int((mse[:, i] == mse.min(axis=1)).sum())
        assert board.normalized_mse[entry.entry] == pytest.approx(
            dict(zip(board.datasets, normalized[:, i], strict=True)))
    means = [e.mean_normalized_mse for e in board.entries]
    assert means == sorted(means)
    assert [e.rank for e in board.entries] == list(range(1, len(complete) + 1))
    assert sum(len(w) for w in board.winners.values()) >= len(board.datasets)
    assert board.entries[0].group == 1
    incomplete = {e.entry: e for e in board.incomplete}
    assert "team-b/broken" in incomplete
    expected_missing = "villacampa_lung_organoid" if track == "raw" else "mirzazadeh_human_colon_p1"
    assert expected_missing in incomplete["team-b/broken"].reason
    assert incomplete["team-b/broken"].n_datasets == len(TINY_DATASETS) - 1


def test_leaderboard_csv_has_ranked_then_incomplete(env: LeaderboardEnv) -> None:
    client = env.client()
    board = client.get("/api/leaderboard").get_json()
    rows = rows_csv(client.get("/api/leaderboard?format=csv"))
    assert len(rows) == len(board["entries"]) + len(board["incomplete"])
    assert [r["entry"] for r in rows[:len(board["entries"])]] == \
        [e["entry"] for e in board["entries"]]
    assert rows[-1]["complete"] == "False" and rows[-1]["reason"]
    assert float(rows[0]["mean_mse"]) == pytest.approx(board["entries"][0]["mean_mse"])


def test_significance_matrix_is_symmetric_in_rank_order(env: LeaderboardEnv) -> None:
    client = env.client()
    report = SignificanceOut.model_validate(client.get("/api/significance").get_json())
    board = client.get("/api/leaderboard").get_json()
    assert report.dunn is not None and report.kruskal is not None
    assert report.dunn.labels == [e["entry"] for e in board["entries"]]
    p = np.array(report.dunn.p_values, dtype=float)
    assert np.allclose(p, p.T) and np.allclose(np.diag(p), 1.0)
    assert report.groups == {e["entry"]: e["group"] for e in board["entries"]}
    assert report.friedman is not None
    assert set(report.friedman.average_ranks) == set(report.dunn.labels)
    rows = rows_csv(client.get("/api/significance?format=csv"))
    assert [r["entry"] for r in rows] == report.dunn.labels
    assert float(rows[0][report.dunn.labels[-1]]) == pytest.approx(p[0, -1])


def test_entry_detail_positions_and_spackle_effect(env: LeaderboardEnv) -> None:
    client = env.client()
    submission_id = env.seeded.ids["team-b/hist2st"]
    entry = EntryOut.model_validate(client.get(f"/api/entries/{submission_id}").get_json())
    assert entry.entry == "team-b/hist2st" and not entry.is_baseline
    assert len(entry.results) == 2 * len(TINY_DATASETS)
    assert entry.parameter_count == 675_000_000
    assert entry.model_card is not None and entry.model_card.name == "hist2st"
    for track in ("raw", "spackle"):
        results = client.get(f"/api/results?track={track}").get_json()["rows"]
        for row in (r for r in entry.results if r.track == track):
            values = [r["mse"] for r in results if r["dataset"] == row.dataset]
            assert row.of == len(values)
            assert row.position == 1 + sum(v < row.mse for v in values)
            assert row.normalized_mse == pytest.approx(row.mse / min(values))
    for dataset, effect in entry.spackle_effect.items():
        raw = next(r.pcc_gene for r in entry.results if r.dataset == dataset and r.track == "raw")
        spackle = next(r.pcc_gene for r in entry.results
                       if r.dataset == dataset and r.track == "spackle")
        assert effect == {"raw": raw, "spackle": spackle, "delta": pytest.approx(spackle - raw)}
    standings = {s.track: s for s in entry.standings}
    board = client.get("/api/leaderboard").get_json()
    rank = next(e["rank"] for e in board["entries"] if e["entry"] == "team-b/hist2st")
    assert standings["raw"].rank == rank and standings["raw"].of == len(board["entries"])
    rows = rows_csv(client.get(f"/api/entries/{submission_id}?format=csv"))
    assert len(rows) == len(entry.results)
    broken = client.get(f"/api/entries/{env.seeded.ids['team-b/broken']}").get_json()
    assert not broken["standings"][0]["complete"]
    assert "failed" in broken["standings"][0]["incomplete_reason"]


def test_datasets_and_dataset(env: LeaderboardEnv) -> None:
    client = env.client()
    index = DatasetsOut.model_validate(client.get("/api/datasets").get_json())
    assert len(index.datasets) == 26
    assert sorted(d.facts.name for d in index.datasets if d.in_release) == sorted(TINY_DATASETS)
    results = client.get("/api/results?track=spackle").get_json()["rows"]
    for item in (d for d in index.datasets if d.in_release):
        spackle = next(t for t in item.tracks if t.track == "spackle")
        on = [r for r in results if r["dataset"] == item.facts.name]
        assert spackle.best_pcc_gene == pytest.approx(max(r["pcc_gene"] for r in on))
        assert spackle.best_entry == min(on, key=lambda r: r["mse"])["entry"]
    one = DatasetOut.model_validate(client.get("/api/datasets/MHPC").get_json())
    assert one.facts.name == "mirzazadeh_human_prostate_cancer" and one.in_release
    assert [s.position for s in one.scores if s.track == "raw"] == \
        sorted(s.position for s in one.scores if s.track == "raw")
    assert len(rows_csv(client.get("/api/datasets/MHPC?format=csv"))) == len(one.scores)
    assert len(rows_csv(client.get("/api/datasets?format=csv"))) >= 26
    missing = client.get("/api/datasets/nope")
    assert missing.status_code == 404 and "26 SpaRED datasets" in missing.get_json()["error"]
    absent = DatasetOut.model_validate(client.get("/api/datasets/VMB").get_json())
    assert not absent.in_release and absent.scores == []


def test_results_and_releases(env: LeaderboardEnv) -> None:
    client = env.client()
    results = ResultsOut.model_validate(client.get("/api/results").get_json())
    # 5 complete entries x 3 datasets + 'broken' on 2 (raw).
    assert len(results.rows) == 5 * 3 + 2
    assert len(rows_csv(client.get("/api/results?format=csv"))) == len(results.rows)
    releases = ReleasesOut.model_validate(client.get("/api/releases").get_json())
    assert [r.is_current for r in releases.releases] == [True, False]
    assert releases.releases[0].release_id == env.seeded.release_id
    old = client.get("/api/leaderboard?release=old").get_json()
    assert old["datasets"] == [TINY_DATASETS[0]]


@pytest.mark.parametrize("query, name", [
    ("track=both", "track"), ("genes=64", "genes"), ("format=xml", "format"),
    ("organism=cat", "organism"), ("generalization=x", "generalization"),
    ("tissue=moon", "tissue"),
])
def test_bad_parameters_are_400_json(client: Any, query: str, name: str) -> None:
    response = client.get(f"/api/leaderboard?{query}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == 400 and body["error"].startswith(f"parameter '{name}': expected")


def test_unknown_release_and_entry_are_404_json(client: Any) -> None:
    for path in ("/api/leaderboard?release=zzzzzzzz", "/api/entries/424242",
                 "/api/entries/424242?format=csv", "/plots/entries/424242/spackle.svg"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["status"] == 404


def test_filter_without_datasets_explains_itself(client: Any) -> None:
    body = client.get("/api/leaderboard?organism=mouse").get_json()
    assert body["entries"] == [] and body["datasets"] == []
    assert body["test_status"] == "not_enough" and "mouse" in body["test_reason"]


def test_new_results_show_without_a_restart(fresh_env: LeaderboardEnv) -> None:
    client = fresh_env.client()
    before = client.get("/api/leaderboard").get_json()
    assert "team-c/newcomer" not in [e["entry"] for e in before["entries"]]
    from evaluator.orchestrator import create_team
    from evaluator.store import Submission, open_store, session_scope

    engine = open_store(fresh_env.url)
    with session_scope(engine) as session:
        team = create_team(session, "team-c")
        submission = Submission(team_id=team.id or 0, name="newcomer", image_ref="x:1",
                                image_digest="sha256:" + "e" * 64)
        session.add(submission)
        session.flush()
        submission_id = int(submission.id or 0)
    _evaluate(engine, submission_id, fresh_env.seeded.release_id, TINY_DATASETS,
              EntrySpec("team-c", "newcomer", 0.05, parameters=10), 9, "")
    after = client.get("/api/leaderboard").get_json()
    assert after["entries"][0]["entry"] == "team-c/newcomer"
    page = client.get("/").get_data(as_text=True)
    assert "newcomer" in page


def test_hidden_entries_leave_every_view(fresh_env: LeaderboardEnv) -> None:
    client = fresh_env.client()
    target = fresh_env.seeded.ids["team-a/vit-delta"]
    admin = fresh_env.token("baselines")
    response = client.post(f"/api/admin/entries/{target}/hide", json={"hidden": True},
                           headers=admin)
    assert response.status_code == 200
    assert response.get_json() == {"submission_id": target, "entry": "team-a/vit-delta",
                                   "hidden": True}
    board = client.get("/api/leaderboard").get_json()
    assert "team-a/vit-delta" not in [e["entry"] for e in board["entries"]]
    assert client.get(f"/api/entries/{target}").status_code == 404
    assert "vit-delta" not in client.get("/").get_data(as_text=True)
    assert all(r["entry"] != "team-a/vit-delta"
               for r in client.get("/api/results").get_json()["rows"])
    shown = client.post(f"/api/admin/entries/{target}/hide", json={"hidden": False},
                        headers=admin)
    assert shown.get_json()["hidden"] is False
    assert client.get("/api/leaderboard").get_json()["entries"][0]["entry"] == \
        "team-a/vit-delta"


def test_hiding_is_seen_by_every_process_whatever_ids_are_hidden(
        fresh_env: LeaderboardEnv) -> None:
    from evaluator.core.settings import Settings
    from leaderboard import LeaderboardConfig, create_app

    # A second app on the same store: its own cache, as another server process has.
    other = create_app(Settings(home=fresh_env.home, database_url=fresh_env.url,
                                queue_url=f"sqlite:///{fresh_env.home / 'queue.db'}"),
                       database_url=fresh_env.url,
                       config=LeaderboardConfig(read_rate_per_s=0.0, write_rate_per_min=0.0))
    admin, client, reader = fresh_env.token("baselines"), fresh_env.client(), other.test_client()
    ids = sorted(fresh_env.seeded.ids.values())
    a, b = ids[1], ids[2]
    c = a + b
    assert c in ids, "the test needs an id equal to the sum of two others"

    def shown() -> set[int]:
        board = reader.get("/api/leaderboard").get_json()
        return {e["submission_id"] for e in board["entries"] + board["incomplete"]}

    for target in (a, b):
        assert client.post(f"/api/admin/entries/{target}/hide", json={"hidden": True},
                           headers=admin).status_code == 200
    assert a not in shown() and b not in shown() and c in shown()
    for target, hidden in ((a, False), (b, False), (c, True)):
        assert client.post(f"/api/admin/entries/{target}/hide", json={"hidden": hidden},
                           headers=admin).status_code == 200
    assert shown() >= {a, b} and c not in shown()
