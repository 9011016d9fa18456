"""A real headless Chromium (Debian's, driven by Playwright) on the leaderboard: switch track and
filter, sort, open an entry (with its owner's view) and the significance page. Screenshots go to
``var/test-artifacts/screenshots/``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.leaderboard.conftest import LeaderboardEnv, make_env

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "var" / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LeaderboardEnv]]:
    """The seeded app behind a threaded WSGI server on a free port."""
    from werkzeug.serving import make_server

    env = make_env(tmp_path_factory.mktemp("browser"))
    server = make_server("127.0.0.1", 0, env.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", env
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"expected Debian's chromium at {CHROMIUM}, found none; run "
                    "scripts/ensure_chromium.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def column(page: Any, index: int) -> list[str]:
    return page.eval_on_selector_all(
        "#leaderboard tbody tr",
        f"rows => rows.map(r => r.children[{index}].dataset.value)")


def test_browse_the_leaderboard(site: tuple[str, LeaderboardEnv], browser: Any) -> None:
    base, env = site
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(base + "/")
    page.wait_for_selector("#leaderboard tbody tr")
    ranked = page.locator("#leaderboard tbody tr").count()
    assert ranked == len(env.client().get("/api/leaderboard").get_json()["entries"])
    assert page.locator("#leaderboard tr.baseline").count() == 2
    assert page.locator("#incomplete").is_visible()
    page.wait_for_function("Array.from(document.images).every(i => i.complete && "
                           "i.naturalWidth > 0)")
    shot(page, "01-leaderboard-raw")

    page.click("nav.tracks a[data-track=spackle]")
    page.wait_for_url("**track=spackle**")
    assert page.locator("nav.tracks a.active").get_attribute("data-track") == "spackle"
    spackle = env.client().get("/api/leaderboard?track=spackle").get_json()
    shown = page.locator("#leaderboard tbody tr td:nth-child(8)").all_inner_texts()
    assert shown == [f"{e['mean_mse']:.4f}" for e in spackle["entries"]]
    shot(page, "02-leaderboard-spackle")

    with page.expect_navigation():
        page.select_option("select[name=genes]", "128")
    assert "genes=128" in page.url and "track=spackle" in page.url
    assert "(128 genes)" in page.inner_text("#summary")
    filtered = env.client().get("/api/leaderboard?track=spackle&genes=128").get_json()
    assert page.locator("#leaderboard tbody tr").count() == len(filtered["entries"])
    shot(page, "03-leaderboard-spackle-128-genes")

    header = page.locator("#leaderboard th", has_text="MSE ↓").nth(1)
    header.click()
    ascending = [float(v) for v in column(page, 7)]
    assert ascending == sorted(ascending)
    header.click()
    assert [float(v) for v in column(page, 7)] == sorted(ascending, reverse=True)
    page.locator("#leaderboard th", has_text="Entry").click()
    names = column(page, 2)
    assert names == sorted(names, key=str.lower)

    page.goto(base + "/")
    page.locator("#incomplete ~ table a", has_text="broken").click()
    page.wait_for_selector("#provenance")
    digest = page.inner_text("#digest")
    assert digest.startswith("sha256:")
    page.fill("input[name=token]", env.seeded.tokens["team-b"])
    with page.expect_navigation():
        page.click("form.owner button")
    page.wait_for_selector("#jobs")
    assert page.locator("#jobs tr.status-failed").count() == 1
    page.click("#jobs tr.status-failed + tr.log details summary")
    assert "shapes differ" in page.inner_text("#jobs tr.status-failed + tr.log pre")
    # What failed in the contract's name, the tries explained, the queue and the day's budget.
    assert page.inner_text("#jobs tr.status-failed td.job-status") == \
        "exit_nonzero (the model)"
    assert page.inner_text("#jobs tr.status-queued td.job-status").startswith("queued #")
    assert "a model's own failure" in page.inner_text("#tries-note")
    assert "Submissions left today (UTC) for team team-b" in page.inner_text(
        "#submissions-left")
    shot(page, "04-entry-owner-view")

    page.click("header.site nav a:has-text('Significance')")
    page.wait_for_selector("#dunn")
    labels = page.locator("#dunn thead th.col").count()
    assert page.locator("#dunn td.sig").count() >= 1
    assert page.locator("#dunn td:not(.na)").count() == labels * (labels - 1) // 2
    page.wait_for_function("Array.from(document.images).every(i => i.complete && "
                           "i.naturalWidth > 0)")
    shot(page, "05-significance")

    page.click("header.site nav a:has-text('Datasets')")
    page.wait_for_selector("#datasets")
    assert page.locator("#datasets tbody tr").count() == 26
    shot(page, "06-datasets")

    assert requests and all(url.startswith(base) for url in requests), \
        [u for u in requests if not u.startswith(base)]
    assert problems == []
    page.close()


# Count, in the pixels Chromium rendered, how many are (near) each colour: the figure drawn into a
# canvas at its own size, then compared channel by channel within a tolerance.
_COUNT_COLOURS = """async ([url, colours]) => {
  const image = new Image();
  image.src = url;
  await image.decode();
  const canvas = document.createElement('canvas');
  canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const counts = colours.map(() => 0);
  for (let i = 0; i < pixels.length; i += 4) {
    colours.forEach((c, k) => {
      if (Math.abs(pixels[i] - c[0]) <= 6 && Math.abs(pixels[i + 1] - c[1]) <= 6 &&
          Math.abs(pixels[i + 2] - c[2]) <= 6) counts[k] += 1;
    });
  }
  return counts;
}"""


def _rgb(hex_colour: str, opacity: float = 1.0) -> list[int]:
    """The colour as rendered over white at ``opacity``."""
    channels = [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]
    return [round(opacity * c + (1 - opacity) * 255) for c in channels]


def test_figures_tell_entries_apart_when_looked_at(site: tuple[str, LeaderboardEnv],
                                                   browser: Any) -> None:
    from leaderboard.plots import PALETTE

    base, env = site
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    board = env.client().get("/api/leaderboard").get_json()
    n = len(board["entries"])
    index = {e["entry"]: i for i, e in enumerate(board["entries"])}
    winners = {w for ws in board["winners"].values() for w in ws}
    assert len(winners) >= 2  # the raw track of the seed splits its datasets
    grey = _rgb("#9a9a9a")
    page.goto(base + "/")
    page.wait_for_function("Array.from(document.images).every(i => i.complete && "
                           "i.naturalWidth > 0)")

    def look(name: str, figure: str, colours: list[list[int]]) -> list[int]:
        image = page.locator(f"#figures img[src*='{figure}']")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        image.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
        return page.evaluate(_COUNT_COLOURS, [image.get_attribute("src"), colours])

    counts = look("07-wins-pie", "wins.svg", [_rgb(c) for c in PALETTE[:n]] + [grey])
    # Every winner's slice shows in its own colour (a third of the pie is ~17,000 pixels); the
    # old baseline grey appears only at anti-aliased text edges, never as a slice.
    for entry in winners:
        assert counts[index[entry]] > 5000, (entry, counts)
    assert sum(1 for c in counts[:n] if c > 5000) == len(winners)
    assert counts[-1] < 1000
    counts = look("08-violins", "violin.svg", [_rgb(c, 0.55) for c in PALETTE[:n]])
    # Each violin in its own tint (the leader's is a sliver: its values are all close to 1).
    assert all(c > 10 for c in counts) and sum(c > 500 for c in counts) >= n - 1, counts
    counts = look("09-ranks", "ranks.svg", [_rgb(c) for c in PALETTE[:n]])
    assert all(c > 20 for c in counts), counts  # each rank dot in its own colour
    page.close()


def test_hostile_entry_names_run_nothing_in_the_browser(
        tmp_path_factory: pytest.TempPathFactory, browser: Any) -> None:
    """Names as the store may hold them (written before names were checked): every figure,
    opened as a document of its own (where an SVG runs its handlers), and every page run no
    script of theirs and stay well-formed."""
    from werkzeug.serving import make_server

    from evaluator.store import Submission, open_store, session_scope

    env = make_env(tmp_path_factory.mktemp("browser-hostile"))
    payload = "x' onload='alert(1)' y='<script>alert(2)</script>\x01"
    target = env.seeded.ids["team-a/vit-delta"]
    with session_scope(open_store(env.url)) as session:
        row = session.get(Submission, target)
        row.name = payload
        session.add(row)
    server = make_server("127.0.0.1", 0, env.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    page = browser.new_page()
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        for path in ("/plots/violin.svg", "/plots/ranks.svg", "/plots/wins.svg",
                     "/plots/params.svg", "/plots/spackle.svg", "/plots/cd.svg",
                     f"/plots/entries/{target}/spackle.svg"):
            response = page.goto(base + path)
            assert response is not None and response.status == 200, path
            # Chromium renders a malformed SVG document as an error page with no <svg> root.
            assert page.evaluate("document.documentElement.localName") == "svg", path
        for path in ("/", f"/entries/{target}", "/significance"):
            page.goto(base + path)
            page.wait_for_load_state("load")
        assert dialogs == [] and errors == []
    finally:
        page.close()
        server.shutdown()
        thread.join(timeout=10)


def test_entry_versions_links_and_withdrawal(tmp_path_factory: pytest.TempPathFactory,
                                             browser: Any) -> None:
    """An entry with two versions: the old page says it is superseded and links the new one,
    both list the versions, the links open nothing of ours (nofollow noopener); the owner
    withdraws the new version from its page and the old one is ranked again."""
    from werkzeug.serving import make_server

    from evaluator.store import open_store
    from tests.leaderboard.test_versions import CODE, PAPER, _score
    from tests.orchestrator.archives import make_archive

    env = make_env(tmp_path_factory.mktemp("browser-versions"))
    old = env.seeded.ids["team-a/stnet"]
    archive, _ = make_archive(nonce="browser-v2")
    answer = env.client().post(
        "/api/submissions", query_string={"name": "stnet", "paper_url": PAPER,
                                          "code_url": CODE},
        data=archive, content_type="application/x-tar", headers=env.token("team-a"))
    assert answer.status_code == 201, answer.get_json()
    new = answer.get_json()["submission_id"]
    _score(open_store(env.url), new, env.seeded.release_id, noise=0.3)
    server = make_server("127.0.0.1", 0, env.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(base + "/")
        page.wait_for_selector("#leaderboard tbody tr")
        row = page.locator("#leaderboard tbody tr", has_text="stnet")
        assert row.count() == 1
        with page.expect_navigation():
            row.locator("a", has_text="stnet").first.click()
        assert page.url.split("?")[0].endswith(f"/entries/{new}")
        assert page.inner_text("#entry-version") == "version 2"
        paper = page.locator("#paper-link")
        assert paper.get_attribute("href") == PAPER
        assert paper.get_attribute("rel") == "nofollow noopener"
        assert page.locator("#code-link").get_attribute("href") == CODE
        assert page.locator("#versions tbody tr").count() == 2
        assert page.locator("#superseded").count() == 0
        shot(page, "10-entry-version-2")

        with page.expect_navigation():
            page.click("#versions a:has-text('version 1')")
        assert page.url.split("?")[0].endswith(f"/entries/{old}")
        notice = page.inner_text("#superseded")
        assert "superseded" in notice and "version 2" in notice
        assert page.locator("#results-raw tbody tr").count() == len(env.seeded.datasets)
        assert page.locator("#versions tr.version-superseded.current").count() == 1
        shot(page, "11-entry-version-1-superseded")

        with page.expect_navigation():
            page.click("#superseded a")
        page.fill("input[name=token]", env.seeded.tokens["team-a"])
        with page.expect_navigation():
            page.click("#withdraw-version")
        assert "withdrew version 2 of team-a/stnet" in page.inner_text("#owner-notice")
        assert page.locator("#withdrawn").is_visible()
        shot(page, "12-entry-withdrawn-owner-view")
        # A visitor (a fresh context: pages are cached 15 s by browsers) sees version 1 again.
        page.close()
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        response = page.goto(base + f"/entries/{new}")
        assert response is not None and response.status == 404
        page.goto(base + "/")
        page.wait_for_selector("#leaderboard tbody tr")
        href = page.locator("#leaderboard tbody tr", has_text="stnet").locator(
            "a", has_text="stnet").first.get_attribute("href")
        assert href is not None and href.split("?")[0].endswith(f"/entries/{old}")
        assert errors == []
    finally:
        page.close()
        server.shutdown()
        thread.join(timeout=10)


def test_the_guide_says_how_to_push_to_the_registry(tmp_path_factory: pytest.TempPathFactory,
                                                     site: tuple[str, LeaderboardEnv],
                                                     browser: Any) -> None:
    """With a registry the guide's submit step names it and the push commands (only missing
    layers travel, a known image refused first); without one it shows the archive upload."""
    from werkzeug.serving import make_server

    env = make_env(tmp_path_factory.mktemp("browser-registry"),
                   registry_url="http://127.0.0.1:5999")
    server = make_server("127.0.0.1", 0, env.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"http://127.0.0.1:{server.server_port}/guide")
        step = page.locator("#submit")
        assert step.is_visible()
        text = step.inner_text()
        assert "registry 127.0.0.1:5999" in text
        assert "docker push 127.0.0.1:5999/team-ID/my-model:v1" in text
        assert "refused before any upload" in text and "--archive" in text
        assert page.locator("#job-limits").is_visible()
        shot(page, "13-guide-registry")
        page.goto(f"{site[0]}/guide")
        assert page.locator("#registry").count() == 0
        assert "application/x-tar" in page.inner_text("#submit")
        assert errors == []
    finally:
        page.close()
        server.shutdown()
        thread.join(timeout=10)
