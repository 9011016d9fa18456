"""The figures: well-formed SVG whose marks match the data they draw."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from leaderboard.plots import gaussian_kde, nice_ticks
from tests.leaderboard.conftest import LeaderboardEnv

SVG_NS = "{http://www.w3.org/2000/svg}"


def svg(env: LeaderboardEnv, path: str) -> ET.Element:
    response = env.client().get(path)
    assert response.status_code == 200, path
    assert response.mimetype == "image/svg+xml"
    assert "max-age" in response.headers["Cache-Control"]
    return ET.fromstring(response.get_data())


def marks(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iter(SVG_NS + tag) if (e.get("class") or "").startswith(css)]


def test_violin_has_one_violin_and_mean_per_ranked_entry(env: LeaderboardEnv) -> None:
    board = env.client().get("/api/leaderboard").get_json()
    root = svg(env, "/plots/violin.svg")
    assert len(marks(root, "polygon", "violin")) == len(board["entries"])
    assert len(marks(root, "circle", "mean")) == len(board["entries"])
    labels = [t.text for t in marks(root, "text", "entry")]
    assert labels == [e["entry"] + (" (baseline)" if e["is_baseline"] else "")
                      for e in board["entries"]]
    texts = "".join(t.text or "" for t in root.iter(SVG_NS + "text"))
    first = board["entries"][0]
    assert f"{first['mean_normalized_mse']:.2f}±{first['std_normalized_mse']:.2f}" in texts


def test_pie_splits_datasets_among_winners(env: LeaderboardEnv) -> None:
    board = env.client().get("/api/leaderboard?track=spackle").get_json()
    winners = {w for ws in board["winners"].values() for w in ws}
    root = svg(env, "/plots/wins.svg?track=spackle")
    assert len(marks(root, "path", "slice")) + len(marks(root, "circle", "slice")) == len(winners)
    legend = [t.text for t in marks(root, "text", "legend")]
    shares = {w: sum(ws.count(w) / len(ws) for ws in board["winners"].values()) for w in winners}
    for line in legend:
        name, percent = line.rsplit(" ", 1)
        name = name.removesuffix(" (baseline)")
        assert percent == f"{100 * shares[name] / len(board['datasets']):.0f}%"


def test_params_plot_places_entries_with_a_parameter_count(env: LeaderboardEnv) -> None:
    board = env.client().get("/api/leaderboard").get_json()
    root = svg(env, "/plots/params.svg")
    with_count = [e for e in board["entries"] if e["parameter_count"]]
    assert len(marks(root, "circle", "point")) == len(with_count)
    texts = [t.text or "" for t in root.iter(SVG_NS + "text")]
    missing = len(board["entries"]) - len(with_count)
    assert any(t.startswith(f"{missing} ranked") for t in texts) == (missing > 0)


def test_spackle_figure_draws_best_of_each_track_per_dataset(env: LeaderboardEnv) -> None:
    root = svg(env, "/plots/spackle.svg")
    datasets = [t.text for t in marks(root, "text", "dataset")]
    assert len(datasets) == 3
    raw = marks(root, "circle", "best-raw")
    spackle = marks(root, "circle", "best-spackle")
    assert len(raw) == len(spackle) == 3
    results = env.client().get("/api/results?track=spackle").get_json()["rows"]
    for mark in spackle:
        title = mark.find(SVG_NS + "title")
        assert title is not None and title.text is not None
        dataset = title.text.split(" ")[0]
        best = max(r["pcc_gene"] for r in results if r["dataset"] == dataset)
        assert title.text.endswith(f"{best:.3f}")
    genes32 = svg(env, "/plots/spackle.svg?genes=32")
    assert len(marks(genes32, "text", "dataset")) == 1


def test_entry_figure_and_cd_diagram(env: LeaderboardEnv) -> None:
    entry = env.seeded.ids["team-a/stnet"]
    root = svg(env, f"/plots/entries/{entry}/spackle.svg")
    assert len(marks(root, "circle", "best-raw")) == 3
    cd = svg(env, "/plots/cd.svg")
    board = env.client().get("/api/leaderboard").get_json()
    names = [t.text.split(" (")[0] for t in marks(cd, "text", "entry")]
    assert sorted(names) == sorted(e["entry"] for e in board["entries"])
    empty = svg(env, "/plots/cd.svg?organism=mouse")
    assert "no dataset" in "".join(t.text or "" for t in empty.iter(SVG_NS + "text"))


def test_figures_are_cached_per_view(env: LeaderboardEnv) -> None:
    cache = env.app.extensions["spared_bench"].cache
    client = env.client()
    client.get("/plots/violin.svg?genes=128")
    hits = cache.hits
    again = client.get("/plots/violin.svg?genes=128")
    assert again.status_code == 200 and cache.hits > hits


def test_helpers() -> None:
    ticks = nice_ticks(1.0, 4.3)
    assert ticks[0] <= 1.0 and ticks[-1] >= 4.3 and len(ticks) <= 8
    grid = np.linspace(-5, 5, 2001)
    density = gaussian_kde(np.array([0.0, 1.0, 2.0]), grid)
    assert abs(np.trapezoid(density, grid) - 1.0) < 1e-3
    assert np.isfinite(gaussian_kde(np.array([1.0, 1.0]), grid)).all()
