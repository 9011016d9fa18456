"""Intervals on the leaderboard: table, JSON, CSV, the ranks figure, Wilcoxon on the
significance page, per-job block-bootstrap intervals, colours that tell entries apart."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from evaluator.scoring import compute_statistics
from evaluator.store import results_rows, session_scope
from tests.leaderboard.conftest import LeaderboardEnv
from tests.leaderboard.test_pages import table
from tests.leaderboard.test_plots import SVG_NS, marks, svg


def test_leaderboard_json_intervals_match_compute_statistics(env: LeaderboardEnv) -> None:
    board = env.client().get("/api/leaderboard").get_json()
    with _session(env) as session:
        rows = results_rows(session, env.seeded.release_id, "raw")
    report = compute_statistics(rows, datasets=board["datasets"],
                                reference_entry="baselines/mean")
    expected = {e.entry: e for e in report.ranked()}
    assert board["bootstrap"] == {"unit": "datasets", "n_resamples": 2000, "seed": 14,
                                  "confidence": 0.95}
    assert board["skill_reference"] == "baselines/mean"
    for entry in board["entries"]:
        stats = expected[entry["entry"]]
        assert (entry["rank_low"], entry["rank_high"]) == (stats.rank_low, stats.rank_high)
        assert entry["rank_low"] <= entry["rank"] <= entry["rank_high"]
        assert entry["mean_normalized_mse_low"] == pytest.approx(stats.mean_normalized_mse_low)
        assert entry["mean_normalized_mse_low"] <= entry["mean_normalized_mse"] \
            <= entry["mean_normalized_mse_high"]
        assert entry["skill"] == pytest.approx(stats.skill)
    mean = next(e for e in board["entries"] if e["entry"] == "baselines/mean")
    assert mean["skill"] == 0.0 and mean["skill_low"] == 0.0
    # Seeded: computing again from the same results gives the same intervals.
    again = compute_statistics(rows, datasets=board["datasets"],
                               reference_entry="baselines/mean")
    assert [(e.rank_low, e.rank_high, e.mean_normalized_mse_low) for e in again.ranked()] == \
        [(e.rank_low, e.rank_high, e.mean_normalized_mse_low) for e in report.ranked()]


def _session(env: LeaderboardEnv):
    from evaluator.store import open_store

    return session_scope(open_store(env.url))


def test_leaderboard_table_shows_intervals_and_rank_ranges(env: LeaderboardEnv) -> None:
    board = env.client().get("/api/leaderboard").get_json()
    html = env.client().get("/").get_data(as_text=True)
    rows = table(html, "leaderboard").rows
    for row, entry in zip(rows, board["entries"], strict=True):
        low, high = entry["mean_normalized_mse_low"], entry["mean_normalized_mse_high"]
        assert row[4] == f"{entry['mean_normalized_mse']:.3f} [{low:.2f}, {high:.2f}]"
        ranks = (f"rank {entry['rank_low']}" if entry["rank_low"] == entry["rank_high"]
                 else f"rank {entry['rank_low']}–{entry['rank_high']}")
        assert row[5] == ranks
        assert row[6].startswith(f"{entry['skill']:.3f} [")
    assert "seed 14" in html.split('id="metrics"')[1]


def test_leaderboard_csv_carries_the_intervals(env: LeaderboardEnv) -> None:
    board = env.client().get("/api/leaderboard").get_json()
    text = env.client().get("/api/leaderboard?format=csv").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    first = board["entries"][0]
    assert int(rows[0]["rank_low"]) == first["rank_low"]
    assert float(rows[0]["mean_normalized_mse_high"]) == \
        pytest.approx(first["mean_normalized_mse_high"])
    assert float(rows[0]["skill_low"]) == pytest.approx(first["skill_low"])


def test_ranks_figure_draws_each_entry_with_its_interval(env: LeaderboardEnv) -> None:
    board = env.client().get("/api/leaderboard").get_json()
    root = svg(env, "/plots/ranks.svg")
    bars = marks(root, "rect", "rank-interval")
    dots = marks(root, "circle", "rank")
    assert len(bars) == len(dots) == len(board["entries"])
    for bar, entry in zip(bars, board["entries"], strict=True):
        title = bar.find(SVG_NS + "title")
        assert title is not None
        assert f"95 % interval {entry['rank_low']}–{entry['rank_high']}" in (title.text or "")
    # Wider rank intervals draw wider bars.
    widths = [float(b.get("width") or 0) for b in bars]
    spans = [e["rank_high"] - e["rank_low"] for e in board["entries"]]
    assert np.argsort(widths, kind="stable").tolist() == \
        np.argsort(spans, kind="stable").tolist()


def test_significance_page_has_wilcoxon_beside_dunn_and_friedman(env: LeaderboardEnv) -> None:
    sig = env.client().get("/api/significance").get_json()
    k = len(sig["dunn"]["labels"])
    assert len(sig["wilcoxon"]) == k * (k - 1) // 2
    assert sig["wilcoxon_holm"]["labels"] == sig["dunn"]["labels"]
    first = sig["wilcoxon"][0]
    assert first["p_holm"] >= first["p_value"]
    html = env.client().get("/significance").get_data(as_text=True)
    for test in ("dunn", "wilcoxon", "friedman"):
        assert f'id="assumes-{test}"' in html
    # Three datasets: no pair can do better than p = 2 / 2^3.
    assert "smallest p-value a pair can reach (one entry better on every dataset) is 0.250" in \
        html
    matrix = table(html, "wilcoxon").rows
    assert len(matrix) == k
    section = html.split('id="wilcoxon"')[1].split("</table>")[0]
    assert section.count('class="sig"') == sum(p["significant"] for p in sig["wilcoxon"])
    pairs = table(html, "wilcoxon-pairs").rows
    assert len(pairs) == k - 1
    text = env.client().get("/api/significance?format=csv&test=wilcoxon").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(sig["wilcoxon"])
    assert float(rows[0]["rank_biserial"]) == pytest.approx(first["rank_biserial"])
    bad = env.client().get("/api/significance?format=csv&test=nemenyi")
    assert bad.status_code == 400


def test_job_intervals_reach_the_results_and_entry_views(env: LeaderboardEnv) -> None:
    results = env.client().get("/api/results").get_json()["rows"]
    assert results and all(r["mse_low"] < r["mse"] < r["mse_high"] for r in results)
    assert all(r["pcc_gene_low"] <= r["pcc_gene"] <= r["pcc_gene_high"] for r in results)
    submission_id = env.seeded.ids["team-a/stnet"]
    detail = env.client().get(f"/api/entries/{submission_id}").get_json()
    html = env.client().get(f"/entries/{submission_id}").get_data(as_text=True)
    rows = {r[0]: r for r in table(html, "results-raw").rows}
    for result in (r for r in detail["results"] if r["track"] == "raw"):
        assert rows[result["dataset"]][2] == (f"{result['mse']:.4f} [{result['mse_low']:.2f}, "
                                              f"{result['mse_high']:.2f}]")


def _fills(root: ET.Element, tag: str, css: str) -> list[str]:
    return [m.get("fill") or "" for m in marks(root, tag, css)]


def test_figures_tell_entries_apart_by_colour(env: LeaderboardEnv) -> None:
    board = env.client().get("/api/leaderboard").get_json()
    violins = _fills(svg(env, "/plots/violin.svg"), "polygon", "violin")
    assert len(set(violins)) == len(board["entries"])
    pie = svg(env, "/plots/wins.svg?track=spackle")
    slices = _fills(pie, "path", "slice") + _fills(pie, "circle", "slice")
    assert len(set(slices)) == len(slices)
    legend = [t.text or "" for t in marks(pie, "text", "legend")]
    baselines = {e["entry"] for e in board["entries"] if e["is_baseline"]}
    for line in legend:
        assert ("(baseline)" in line) == any(line.startswith(b + " ") for b in baselines)


def test_reruns_mark_entries_reproducible_or_show_the_spread(fresh_env: LeaderboardEnv) -> None:
    from evaluator.store import claim_job, complete_job, create_jobs, open_store
    from tests.leaderboard.seed import DEFAULT_ENTRIES, TINY_DATASETS, job_score

    engine = open_store(fresh_env.url)
    release = fresh_env.seeded.release_id
    entries = [(d, t) for d in TINY_DATASETS for t in ("raw", "spackle")]
    for name, extra_noise in (("baselines/ridge", 0.0), ("team-a/vit-delta", 0.05)):
        number = next(i for i, s in enumerate(DEFAULT_ENTRIES) if f"{s.team}/{s.name}" == name)
        spec = DEFAULT_ENTRIES[number]
        with session_scope(engine) as session:
            ids = create_jobs(session, fresh_env.seeded.ids[name], release, entries,
                              max_attempts=1, run=1).to_enqueue
        for job_id, (dataset, track) in zip(ids, entries, strict=True):
            with session_scope(engine) as session:
                claim = claim_job(session, job_id, "rerun-worker")
                assert claim is not None
                # The seed's own seeding: identical predictions unless noise is added.
                score = job_score(dataset, track, release, spec.noise + extra_noise,
                                  seed=1000 * number + 10 * TINY_DATASETS.index(dataset)
                                  + len(track))
                complete_job(session, claim, score)
    board = fresh_env.client().get("/api/leaderboard").get_json()
    by = {e["entry"]: e for e in board["entries"]}
    assert by["baselines/ridge"]["reproducible"] is True
    assert by["baselines/ridge"]["runs"] == 2 and by["baselines/ridge"]["rerun_mse_spread"] == 0
    assert by["team-a/vit-delta"]["reproducible"] is False
    assert by["team-a/vit-delta"]["rerun_mse_spread"] > 0
    assert by["team-a/stnet"]["reproducible"] is None
    # Re-runs never change the ranking's inputs: same ranks as before, same number of rows.
    assert len(fresh_env.client().get("/api/results").get_json()["rows"]) == \
        sum(1 for e in board["entries"]) * len(TINY_DATASETS) + 2
    html = fresh_env.client().get("/").get_data(as_text=True)
    rows = {r[2].split(" ")[0]: r[2] for r in table(html, "leaderboard").rows}
    assert "reproducible" in rows["ridge"]
    assert "runs differ: ΔMSE ≤" in rows["vit-delta"]
    assert "reproducible" not in rows["stnet"] and "differ" not in rows["stnet"]
    drifting = fresh_env.client().get(
        f"/api/entries/{fresh_env.seeded.ids['team-a/vit-delta']}").get_json()["reruns"]
    assert len(drifting) == len(entries)
    assert all(not r["identical"] and r["mse_min"] < r["mse_max"] and r["runs"] == 2
               for r in drifting)
    page = fresh_env.client().get(f"/entries/{fresh_env.seeded.ids['baselines/ridge']}")
    shown = table(page.get_data(as_text=True), "reruns").rows
    assert len(shown) == len(entries) and all(r[3] == "identical" for r in shown)


def test_admin_rerun_endpoint_queues_the_next_run(fresh_env: LeaderboardEnv) -> None:
    client = fresh_env.client()
    sid = fresh_env.seeded.ids["team-a/stnet"]
    refused = client.post("/api/admin/rerun", json={"submission": sid},
                          headers=fresh_env.token("team-a"))
    assert refused.status_code == 403
    answer = client.post("/api/admin/rerun", json={"submission": sid},
                         headers=fresh_env.token("baselines"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["run"] == 1 and body["jobs_queued"] == 2 * len(fresh_env.seeded.datasets)
    assert body["entry"] == "team-a/stnet"
