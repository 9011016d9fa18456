"""A real headless Chromium on the admins' workers page: the form takes an admin token and
shows each worker's host, GPUs, current job, heartbeat age and throughput; a team's token is
refused. Screenshots go to ``var/test-artifacts/screenshots/``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.browser.test_leaderboard_browser import browser, shot  # noqa: F401 (fixture)
from tests.leaderboard.conftest import LeaderboardEnv, make_env

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LeaderboardEnv, int]]:
    """The seeded app with two workers, one running the seed's queued job."""
    from sqlmodel import select
    from werkzeug.serving import make_server

    from evaluator.store import (
        Job,
        claim_job,
        open_store,
        register_worker,
        session_scope,
        utcnow,
    )

    env = make_env(tmp_path_factory.mktemp("workers-browser"))
    engine = open_store(env.url)
    now = utcnow()
    with session_scope(engine) as session:
        register_worker(session, "gpu-node-1", host="node-a.lab", pid=4242, gpu_ids="0",
                        gpu_names="0: NVIDIA H100 80GB HBM3", slots=1,
                        now=now - timedelta(seconds=3))
        register_worker(session, "cpu-node-1", host="node-b.lab", pid=77, gpu_ids="",
                        gpu_names="", slots=1, now=now - timedelta(minutes=5))
        queued = session.exec(select(Job).where(Job.status == "queued")).first()
        assert queued is not None and queued.id is not None
        job_id = queued.id
    with session_scope(engine) as session:
        assert claim_job(session, job_id, "gpu-node-1", gpus=[0]) is not None
    server = make_server("127.0.0.1", 0, env.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", env, job_id
    server.shutdown()
    thread.join(timeout=10)


def test_admin_sees_the_workers(site: tuple[str, LeaderboardEnv, int], browser: Any  # noqa: F811
                                ) -> None:
    base, env, job_id = site
    page = browser.new_page(viewport={"width": 1360, "height": 800})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(base + "/admin/workers")
    assert page.locator("#workers").count() == 0
    page.fill("input[name=token]", env.seeded.tokens["baselines"])
    with page.expect_navigation():
        page.click("#workers-form button")
    page.wait_for_selector("#workers tbody tr")
    rows = page.locator("#workers tbody tr")
    assert rows.count() == 2
    gpu = page.locator('#workers tr[data-name="gpu-node-1"]')
    cells = gpu.locator("td").all_inner_texts()
    assert cells[:4] == ["gpu-node-1", "alive", "node-a.lab (pid 4242)",
                         "0: NVIDIA H100 80GB HBM3"]
    assert cells[4].startswith(f"job {job_id} ")
    assert float(gpu.locator("td.age").get_attribute("data-value")) < 60
    assert gpu.locator("td.throughput").inner_text() == "0"
    # the current job links to its entry
    href = gpu.locator("td.jobs a").get_attribute("href")
    assert href and href.startswith("/entries/")
    cpu = page.locator('#workers tr[data-name="cpu-node-1"]').locator("td").all_inner_texts()
    assert cpu[1] == "silent" and cpu[3] == "none (CPU)" and cpu[4] == "idle"
    assert "1 alive of 2 recorded" in page.inner_text("#workers-summary")
    shot(page, "20-admin-workers")

    # The page agrees with the admins' API.
    api = env.client().get("/api/admin/workers", headers=env.token("baselines")).get_json()
    assert {w["name"] for w in api["workers"]} == {"gpu-node-1", "cpu-node-1"}

    assert problems == []

    # A team's token is refused with the error page (a 403), showing no worker.
    page.goto(base + "/admin/workers")
    team = next(t for t in env.seeded.tokens if t != "baselines")
    page.fill("input[name=token]", env.seeded.tokens[team])
    with page.expect_navigation():
        page.click("#workers-form button")
    assert "expected an admin token" in page.content()
    assert page.locator("#workers").count() == 0
    assert [p for p in problems if "403" not in p] == []
