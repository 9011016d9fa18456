"""The HTML pages through Flask's test client: content, views, owner's view, bad parameters."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from evaluator.core.vocabulary import METRICS, RESULT_METRICS, TRACKS, Metric
from evaluator.datasets import get_dataset, load_registry
from tests.leaderboard.conftest import LeaderboardEnv
from tests.leaderboard.seed import DEFAULT_ENTRIES, TINY_DATASETS


class _Table(HTMLParser):
    """Collect the rows (cell texts) of the table with a given id."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.depth = 0
        self.rows: list[list[str]] = []
        self.classes: list[str] = []
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "table" and values.get("id") == self.table_id:
            self.depth = 1
        elif tag == "table" and self.depth:
            self.depth += 1
        if not self.depth:
            return
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
            self.classes.append(values.get("class") or "")
        elif tag in ("td", "th") and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if not self.depth:
            return
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table(html: str, table_id: str) -> _Table:
    parser = _Table(table_id)
    parser.feed(html)
    return parser


def complete_specs() -> list[Any]:
    return [s for s in DEFAULT_ENTRIES if not s.failed and not s.queued]


def test_leaderboard_ranks_entries_by_noise_with_baselines_marked(env: LeaderboardEnv) -> None:
    response = env.client().get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    board = table(html, "leaderboard")
    expected = [s.name for s in sorted(complete_specs(), key=lambda s: s.noise)]
    assert [row[2].split(" ")[0] for row in board.rows] == expected
    assert [row[0] for row in board.rows] == [str(i) for i in range(1, len(expected) + 1)]
    baselines = {s.name for s in DEFAULT_ENTRIES if s.baseline}
    for row, css in zip(board.rows, board.classes, strict=True):
        name = row[2].split(" ")[0]
        assert ("baseline" in css) == (name in baselines)
        assert ("baseline" in row[2]) == (name in baselines)
    # Parameters from model.json, or a dash.
    by_name = {s.name: s for s in DEFAULT_ENTRIES}
    for row in board.rows:
        spec = by_name[row[2].split(" ")[0]]
        assert (row[10] == "—") == (spec.parameters is None)


def test_leaderboard_lists_incomplete_entries_apart_with_the_reason(env: LeaderboardEnv) -> None:
    html = env.client().get("/").get_data(as_text=True)
    incomplete = table(html, "leaderboard").rows
    assert all("broken" not in row[2] for row in incomplete)
    rows = [r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", html.split('id="incomplete"')[1], re.S)
            if "broken" in r]
    assert len(rows) == 1
    assert "villacampa_lung_organoid" in rows[0] and "failed" in rows[0]
    assert "2 / 3" in rows[0]


def test_leaderboard_explains_each_metric_and_its_direction(client: Any) -> None:
    html = client.get("/").get_data(as_text=True)
    legend = html.split('id="metrics"')[1]
    for term in ("Norm. MSE", "MSE", "PCC-Gene", "Won", "Group"):
        assert f"<dt>{term}" in legend
    assert legend.count("Lower is better") >= 2 and legend.count("Higher is better") >= 2


def test_track_switch_shows_the_spackle_numbers(env: LeaderboardEnv) -> None:
    client = env.client()
    raw = client.get("/api/leaderboard?track=raw").get_json()
    spackle = client.get("/api/leaderboard?track=spackle").get_json()
    html = client.get("/?track=spackle").get_data(as_text=True)
    assert 'class="track active" data-track="spackle"' in html
    rows = table(html, "leaderboard").rows
    shown = {row[2].split(" ")[0]: row[7] for row in rows}
    for entry in spackle["entries"]:
        assert shown[entry["name"]] == f"{entry['mean_mse']:.4f}"
    # Spackle has one more incomplete dataset for 'broken' (a queued job) and lower MSEs.
    raw_mse = {e["name"]: e["mean_mse"] for e in raw["entries"]}
    assert all(e["mean_mse"] < raw_mse[e["name"]] for e in spackle["entries"])


def test_older_release_is_selectable_and_unknown_is_404(env: LeaderboardEnv) -> None:
    client = env.client()
    html = client.get("/?release=old").get_data(as_text=True)
    assert "release old" in html and "(not current)" in html
    names = [row[2].split(" ")[0] for row in table(html, "leaderboard").rows]
    assert sorted(names) == ["mean", "ridge"]
    assert re.search(r"on 1 dataset\s+\(all datasets\)", html)
    by_prefix = client.get(f"/?release={env.seeded.old_release_id[:8]}")
    assert by_prefix.status_code == 200
    missing = client.get("/?release=nosuchrelease")
    assert missing.status_code == 404
    assert "expected one of the published releases" in missing.get_data(as_text=True)


def test_filter_recomputes_on_the_subset(env: LeaderboardEnv) -> None:
    client = env.client()
    html = client.get("/?genes=128").get_data(as_text=True)
    subset = [d for d in TINY_DATASETS if get_dataset(d).genes == 128]
    assert re.search(rf"on {len(subset)} datasets\s+\(128 genes\)", html)
    # Mean MSE on the page equals the mean over the subset of the stored results.
    results = client.get("/api/results?track=raw").get_json()["rows"]
    rows = table(html, "leaderboard").rows
    for row in rows:
        name = row[2].split(" ")[0]
        values = [r["mse"] for r in results if r["name"] == name and r["dataset"] in subset]
        assert row[7] == f"{sum(values) / len(values):.4f}"
    # 'broken' lacks villacampa (128 genes) but not the 32-gene dataset: complete there.
    only32 = client.get("/api/leaderboard?genes=32").get_json()
    assert "team-b/broken" in [e["entry"] for e in only32["entries"]]


def test_filter_matching_no_dataset_says_so(client: Any) -> None:
    response = client.get("/?organism=mouse")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="no-ranked"' in html and re.search(r"on 0 datasets\s", html)


def test_bad_view_parameters_answer_400_pages(client: Any) -> None:
    for query, name in (("track=bad", "track"), ("genes=7", "genes"), ("tissue=liver", "tissue"),
                        ("organism=fish", "organism"), ("generalization=sideways",
                                                        "generalization")):
        response = client.get(f"/?{query}")
        assert response.status_code == 400, query
        assert response.mimetype == "text/html"
        assert f"parameter &#39;{name}&#39;: expected" in response.get_data(as_text=True)


def test_entry_page_shows_both_tracks_positions_digest_and_owner_form(env: LeaderboardEnv
                                                                      ) -> None:
    client = env.client()
    submission_id = env.seeded.ids["team-a/stnet"]
    html = client.get(f"/entries/{submission_id}").get_data(as_text=True)
    detail = client.get(f"/api/entries/{submission_id}").get_json()
    assert detail["image_digest"] in html
    for track in ("raw", "spackle"):
        rows = table(html, f"results-{track}").rows
        assert sorted(r[0] for r in rows) == sorted(TINY_DATASETS)
        for row in rows:
            stored = next(r for r in detail["results"]
                          if r["dataset"] == row[0] and r["track"] == track)
            assert row[1] == f"{stored['position']} / {stored['of']}"
    effect = table(html, "spackle-effect").rows
    assert len(effect) == len(TINY_DATASETS)
    assert all(float(r[3]) == round(float(r[2]) - float(r[1]), 3) or
               abs(float(r[3]) - (float(r[2]) - float(r[1]))) <= 0.0015 for r in effect)
    assert 'name="token"' in html and 'type="password"' in html
    assert "/plots/entries/" in html
    # The job limits it ran under: the service's, as /api/limits states them.
    limits = client.get("/api/limits").get_json()
    assert f"time {limits['time_limit_s']:g} s" in html.split('id="entry-limits"')[1]


def _metric_headers(metrics: list[Metric]) -> list[str]:
    arrows = {"lower": "↓", "higher": "↑"}
    headers = []
    for m in metrics:
        headers.append(f"{m.label} {arrows[m.better]}")
        if m.name == "mse":
            headers.append("Norm. MSE ↓")
    return headers


def test_result_tables_take_their_columns_from_the_metric_specification(env: LeaderboardEnv
                                                                        ) -> None:
    client = env.client()
    submission_id = env.seeded.ids["team-a/stnet"]
    pages = {f"results-{track}": (client.get(f"/entries/{submission_id}"),
                                  ["Dataset", "Position", *_metric_headers(
                                      [m for m in RESULT_METRICS if m.track in (None, track)])])
             for track in TRACKS}
    pages["scores"] = (client.get("/datasets/MHPC"),
                       ["Track", "Position", "Entry", *_metric_headers(list(METRICS))])
    for table_id, (response, expected) in pages.items():
        html = response.get_data(as_text=True)
        head = html.split(f'id="{table_id}"')[1].split("</thead>")[0]
        assert re.findall(r"<th[^>]*>([^<]*)</th>", head) == expected, table_id
        rows = table(html, table_id).rows
        assert rows and all(len(row) == len(expected) for row in rows), table_id


def test_entry_owner_view_needs_the_owners_token(env: LeaderboardEnv) -> None:
    client = env.client()
    broken = env.seeded.ids["team-b/broken"]
    own = client.post(f"/entries/{broken}", data={"token": env.seeded.tokens["team-b"]})
    assert own.status_code == 200
    html = own.get_data(as_text=True)
    jobs = table(html, "jobs")
    # The contract's name of what failed, and whose fault, as `status` says it.
    assert any("exit_nonzero (the model)" in " ".join(row) for row in jobs.rows)
    assert "Traceback: ValueError: shapes differ" in html
    assert any("queued #" in " ".join(row) for row in jobs.rows)
    assert "a model&#39;s own failure (exit_nonzero" in html.split('id="tries-note"')[1]
    assert 'id="submissions-left"' in html
    other = client.post(f"/entries/{broken}", data={"token": env.seeded.tokens["team-a"]})
    assert other.status_code == 200
    assert "not to this entry's team" in other.get_data(as_text=True)
    assert "shapes differ" not in other.get_data(as_text=True)
    admin = client.post(f"/entries/{broken}", data={"token": env.seeded.tokens["baselines"]})
    assert "shapes differ" in admin.get_data(as_text=True)
    bad = client.post(f"/entries/{broken}", data={"token": "sbt_not-a-token"})
    assert bad.status_code == 401
    empty = client.post(f"/entries/{broken}", data={})
    assert empty.status_code == 401


def test_unknown_entry_is_404(client: Any) -> None:
    assert client.get("/entries/99999").status_code == 404


def test_datasets_index_lists_the_registry_with_difficulty(env: LeaderboardEnv) -> None:
    client = env.client()
    html = client.get("/datasets").get_data(as_text=True)
    rows = table(html, "datasets").rows
    assert len(rows) == len(load_registry())
    results = client.get("/api/results?track=raw").get_json()["rows"]
    for row in rows:
        if row[0] in TINY_DATASETS:
            best = max(r["pcc_gene"] for r in results if r["dataset"] == row[0])
            assert row[10] == f"{best:.3f}"
        else:
            assert "not in this release" in row[12]


def test_dataset_page_shows_facts_best_entry_and_all_scores(env: LeaderboardEnv) -> None:
    client = env.client()
    info = get_dataset("villacampa_lung_organoid")
    html = client.get(f"/datasets/{info.abbreviation}").get_data(as_text=True)
    facts = html.split('id="facts"')[1].split("</dl>")[0]
    assert f"{info.slides} / {info.patients} / {info.spots}" in facts
    assert info.tissue in facts and info.generalization in facts
    results = client.get("/api/results?track=raw").get_json()["rows"]
    on_dataset = [r for r in results if r["dataset"] == info.name]
    best = min(on_dataset, key=lambda r: r["mse"])
    difficulty = table(html, "difficulty").rows
    raw_row = next(r for r in difficulty if r[0] == "raw")
    assert raw_row[2] == best["entry"]
    assert raw_row[4] == f"{max(r['pcc_gene'] for r in on_dataset):.3f}"
    scores = table(html, "scores").rows
    assert len([r for r in scores if r[0] == "raw"]) == len(on_dataset)
    assert client.get("/datasets/not_a_dataset").status_code == 404


def test_significance_page_marks_significant_dunn_cells(env: LeaderboardEnv) -> None:
    client = env.client()
    html = client.get("/significance").get_data(as_text=True)
    report = client.get("/api/significance").get_json()
    labels = report["dunn"]["labels"]
    matrix = html.split('id="dunn"')[1].split("</table>")[0]
    cells = re.findall(r"<td class=\"(sig|)\" title=\"([^\"]+) vs ([^\"]+): p", matrix)
    assert len(cells) == len(labels) * (len(labels) - 1) // 2
    for css, a, b in cells:
        p = report["dunn"]["p_values"][labels.index(a)][labels.index(b)]
        assert (css == "sig") == (p < report["alpha"])
    assert any(css == "sig" for css, _, _ in cells)
    assert "Kruskal–Wallis" in html and 'id="kruskal"' in html
    assert "/plots/cd.svg" in html
    groups = table(html, "groups").rows
    assert [r[2] for r in groups] == [str(report["groups"][r[1]]) for r in groups]


def test_guide_renders_the_contract_and_the_commands(client: Any) -> None:
    contract = Path(__file__).resolve().parents[2] / "submissions" / "CONTRACT.md"
    html = client.get("/guide").get_data(as_text=True)
    first_heading = next(line for line in contract.read_text().splitlines()
                         if line.startswith("# "))[2:]
    assert f"<h1>{first_heading}</h1>".replace("(", "(") in html
    assert "<table>" in html.split('id="contract"')[1]
    assert "spared-bench check" in html and "spared-bench submit" in html
    assert "--server SERVER_URL" in html  # no public URL configured; never the Host header
    assert "spared-bench template my-model" in html
    assert "spared-bench predictions TEAM/NAME" in html.split('id="own-predictions"')[1]
    daily = html.split('id="daily-limit"')[1].split("</li>")[0]
    assert "may submit 5 time(s) per UTC day" in daily and "left today" in daily


def test_api_reference_page_lists_every_operation(client: Any) -> None:
    html = client.get("/api").get_data(as_text=True)
    doc = client.get("/api/openapi.json").get_json()
    rows = table(html, "endpoints").rows
    assert len(rows) == sum(len(ops) for ops in doc["paths"].values())


def test_unknown_path_and_wrong_method(client: Any) -> None:
    page = client.get("/nowhere")
    assert page.status_code == 404 and page.mimetype == "text/html"
    api = client.get("/api/nowhere")
    assert api.status_code == 404 and api.get_json()["status"] == 404
    wrong = client.delete("/api/leaderboard")
    assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]
    assert "expected one of" in wrong.get_json()["error"]


def test_pages_are_offline_and_locked_down(client: Any) -> None:
    html = client.get("/").get_data(as_text=True)
    for url in re.findall(r"(?:src|href)=\"([^\"]+)\"", html):
        assert not url.startswith(("http:", "https:", "//")), url
    response = client.get("/")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    for asset in ("/static/style.css", "/static/app.js"):
        with client.get(asset) as static:
            assert static.status_code == 200


def test_health(env: LeaderboardEnv) -> None:
    body = env.client().get("/healthz").get_json()
    assert body == {"status": "ok", "current_release": env.seeded.release_id}


def test_health_is_503_when_the_database_is_gone(tmp_path: Any) -> None:
    from tests.leaderboard.conftest import make_env

    gone = make_env(tmp_path / "home")
    Path(gone.url.removeprefix("sqlite:///")).unlink()
    for suffix in ("-wal", "-shm"):
        Path(gone.url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    response = gone.client().get("/healthz")
    assert response.status_code == 503
    assert "expected the results database to answer" in response.get_json()["error"]


@pytest.mark.slow
def test_the_contract_ships_inside_the_package(tmp_path: Path) -> None:
    """A wheel carries CONTRACT.md's text (not a link): built images show the real guide."""
    import shutil
    import subprocess
    import sys
    import zipfile

    repo = Path(__file__).resolve().parents[2]
    had_build = (repo / "build").exists()  # setuptools builds in the source tree
    try:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "--no-build-isolation", "-q", "-w", str(tmp_path), str(repo)],
                       check=True, capture_output=True, timeout=600)
    finally:
        if not had_build:
            shutil.rmtree(repo / "build", ignore_errors=True)
    wheel = next(tmp_path.glob("spared_bench-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("leaderboard/CONTRACT.md").decode()
    assert shipped == (repo / "submissions" / "CONTRACT.md").read_text()
