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
    shown = page.locator("#leaderboard tbody tr td:nth-child(6)").all_inner_texts()
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
    ascending = [float(v) for v in column(page, 5)]
    assert ascending == sorted(ascending)
    header.click()
    assert [float(v) for v in column(page, 5)] == sorted(ascending, reverse=True)
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
