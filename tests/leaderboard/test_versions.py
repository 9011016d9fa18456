"""Entry versions, withdrawal and entry links, end to end through the real web app and store
(SQLite and Postgres): submit v1 over HTTP, score it, submit v2 under the same name, see v2
supersede v1 everywhere the leaderboard ranks while v1 stays reachable; the owner withdraws,
another team cannot, admins still see it and only admins put it back; the CLI does the same
locally and against `spared-bench serve` (two processes: the views refresh across them)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from evaluator.cli import main
from evaluator.store import Job, Result, claim_job, complete_job, open_store, session_scope
from tests.leaderboard.conftest import LeaderboardEnv, make_env
from tests.leaderboard.seed import job_score
from tests.orchestrator.archives import make_archive
from tests.store.dbsupport import postgres_schema_url

PAPER = "https://arxiv.org/abs/2407.13027"
CODE = "https://github.com/BCV-Uniandes/SpaRED?tab=readme#install"


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LeaderboardEnv]:
    """A seeded app on a fresh SQLite file or a fresh Postgres schema."""
    from evaluator.store import dispose_engines

    with contextlib.ExitStack() as stack:
        url = None if request.param == "sqlite" else stack.enter_context(postgres_schema_url())
        yield make_env(tmp_path / "home", url=url)
        dispose_engines()


def _submit(env: LeaderboardEnv, team: str, name: str, nonce: str, **params: str) -> Any:
    archive, _ = make_archive(nonce=nonce)
    return env.client().post("/api/submissions", query_string={"name": name, **params},
                             data=archive, content_type="application/x-tar",
                             headers=env.token(team))


def _score(engine: Engine, submission_id: int, release_id: str, noise: float) -> int:
    """Run a submission's queued jobs as a worker would: claim, score, complete."""
    done = 0
    with session_scope(engine) as session:
        jobs = list(session.exec(select(Job).where(Job.submission_id == submission_id,
                                                   Job.release_id == release_id)))
        for number, job in enumerate(jobs):
            claim = claim_job(session, job.id or 0, "test-worker")
            assert claim is not None
            score = job_score(job.dataset, job.track, release_id, noise, seed=7000 + number)
            complete_job(session, claim, score, message="ok", log_text="fine\n")
            done += 1
    return done


def _ranked(env: LeaderboardEnv, client: Any = None) -> dict[str, int]:
    board = (client or env.client()).get("/api/leaderboard").get_json()
    return {e["entry"]: e["submission_id"] for e in board["entries"]}


def test_versions_supersede_withdraw_and_links(store_env: LeaderboardEnv) -> None:
    env, client = store_env, store_env.client()
    engine = open_store(env.url)
    release = env.seeded.release_id
    before = len(_ranked(env))

    # v1, with links; scored: ranked.
    first = _submit(env, "team-a", "histogene", "v1", description="HisToGene port",
                    paper_url=PAPER, code_url=CODE)
    assert first.status_code == 201, first.get_json()
    v1 = first.get_json()
    assert v1["version"] == 1 and v1["supersedes"] is None and v1["paper_url"] == PAPER
    assert _score(engine, v1["submission_id"], release, noise=0.9) == 6
    assert _ranked(env)["team-a/histogene"] == v1["submission_id"]

    # v2 under the same name: a new row, version 2; v1 stays ranked until v2 has results.
    second = _submit(env, "team-a", "histogene", "v2")
    assert second.status_code == 201, second.get_json()
    v2 = second.get_json()
    assert v2["version"] == 2 and v2["supersedes"] == v1["submission_id"]
    assert "version 2 of team-a/histogene" in v2["message"]
    board = client.get("/api/leaderboard").get_json()
    assert _ranked(env)["team-a/histogene"] == v1["submission_id"]
    assert all(e["submission_id"] != v2["submission_id"] for e in board["incomplete"])
    pending = client.get(f"/api/entries/{v2['submission_id']}").get_json()
    assert pending["superseded_by"] is None
    assert [v["state"] for v in pending["versions"]] == ["shown", "pending"]

    # v2 scored (better): it supersedes v1 in every ranked view; one row per entry.
    _score(engine, v2["submission_id"], release, noise=0.2)
    board = client.get("/api/leaderboard").get_json()
    ranked = {e["entry"]: e for e in board["entries"]}
    assert len(ranked) == before + 1
    assert ranked["team-a/histogene"]["submission_id"] == v2["submission_id"]
    assert ranked["team-a/histogene"]["version"] == 2
    assert board["entries"][0]["entry"] == "team-a/histogene"
    labels = client.get("/api/significance").get_json()["dunn"]["labels"]
    assert labels.count("team-a/histogene") == 1
    results = client.get("/api/results").get_json()["rows"]
    assert {r["submission_id"] for r in results if r["name"] == "histogene"} == \
        {v2["submission_id"]}
    dataset = client.get(f"/api/datasets/{env.seeded.datasets[0]}").get_json()
    assert [s["submission_id"] for s in dataset["scores"] if s["entry"] ==
            "team-a/histogene"] == [v2["submission_id"], v2["submission_id"]]
    csv_text = client.get("/api/leaderboard?format=csv").get_data(as_text=True)
    assert csv_text.splitlines()[0].split(",")[8] == "version"

    # v1 stays reachable: its own results, which version supersedes it, the list of versions.
    old = client.get(f"/api/entries/{v1['submission_id']}").get_json()
    assert old["version"] == 1 and old["superseded_by"] == v2["submission_id"]
    assert old["superseded_by_version"] == 2 and len(old["results"]) == 6
    assert [(v["version"], v["state"], v["url"]) for v in old["versions"]] == \
        [(1, "superseded", f"/entries/{v1['submission_id']}"),
         (2, "shown", f"/entries/{v2['submission_id']}")]
    assert all(s["rank"] is None and "superseded by version 2" in s["incomplete_reason"]
               for s in old["standings"])
    assert old["paper_url"] == PAPER and old["code_url"] == CODE
    page = client.get(f"/entries/{v1['submission_id']}").get_data(as_text=True)
    assert 'id="superseded"' in page and f'href="/entries/{v2["submission_id"]}' in page
    assert f'<a id="paper-link" href="{PAPER}" rel="nofollow noopener"' in page
    assert 'href="https://github.com/BCV-Uniandes/SpaRED?tab=readme#install"' in page
    new_page = client.get(f"/entries/{v2['submission_id']}").get_data(as_text=True)
    assert 'id="versions"' in new_page and 'id="superseded"' not in new_page
    assert 'id="paper-link"' not in new_page  # links belong to the version that gave them

    # Withdrawal: another team cannot (API or page form); no token is 401; the owner can.
    form = client.post(f"/entries/{v2['submission_id']}/withdraw",
                       data={"token": env.seeded.tokens["team-b"], "scope": "all"})
    assert form.status_code == 403
    restore = client.post(f"/entries/{v2['submission_id']}/withdraw",
                          data={"token": env.seeded.tokens["team-a"], "action": "restore"})
    assert restore.status_code == 403
    other = client.post("/api/withdrawals", json={"entry": "team-a/histogene"},
                        headers=env.token("team-b"))
    assert other.status_code == 403 and "another team" in other.get_json()["error"]
    assert client.post("/api/withdrawals", json={"entry": "team-a/histogene"}
                       ).status_code == 401
    missing = client.post("/api/withdrawals", json={"entry": "team-a/histogene", "version": 9},
                          headers=env.token("team-a"))
    assert missing.status_code == 404
    one = client.post("/api/withdrawals", json={"entry": "team-a/histogene", "version": 2},
                      headers=env.token("team-a"))
    assert one.status_code == 200, one.get_json()
    assert one.get_json()["versions"] == [2]
    # Withdrawing v2 ranks v1 again.
    assert _ranked(env)["team-a/histogene"] == v1["submission_id"]
    assert client.get(f"/api/entries/{v2['submission_id']}").status_code == 404
    every = client.post("/api/withdrawals", json={"entry": str(v1["submission_id"])},
                        headers=env.token("team-a")).get_json()
    assert every["versions"] == [1] and every["withdrawn"] is True
    assert "team-a/histogene" not in _ranked(env)
    assert len(_ranked(env)) == before
    assert client.get(f"/entries/{v1['submission_id']}").status_code == 404
    assert "histogene" not in client.get("/").get_data(as_text=True)
    assert "histogene" not in client.get("/api/datasets").get_data(as_text=True)

    # Its team and the admins still see it; another team does not.
    own = client.get(f"/api/submissions/{v1['submission_id']}", headers=env.token("team-a"))
    assert own.status_code == 200 and own.get_json()["withdrawn"] is True
    assert own.get_json()["versions"] == {"1": v1["submission_id"], "2": v2["submission_id"]}
    assert client.get(f"/api/submissions/{v1['submission_id']}",
                      headers=env.token("baselines")).status_code == 200
    assert client.get(f"/api/submissions/{v1['submission_id']}",
                      headers=env.token("team-b")).status_code == 403
    admin_page = client.post(f"/entries/{v1['submission_id']}",
                             data={"token": env.seeded.tokens["baselines"]})
    assert admin_page.status_code == 200
    html = admin_page.get_data(as_text=True)
    assert 'id="withdrawn"' in html and "Put this version back" in html
    assert client.post(f"/entries/{v1['submission_id']}",
                       data={"token": env.seeded.tokens["team-b"]}).status_code == 404

    # Only admins put it back.
    undo = client.post("/api/withdrawals", json={"entry": "team-a/histogene",
                                                 "withdrawn": False},
                       headers=env.token("team-a"))
    assert undo.status_code == 403 and "admin" in undo.get_json()["error"]
    back = client.post("/api/withdrawals", json={"entry": "team-a/histogene",
                                                 "withdrawn": False},
                       headers=env.token("baselines"))
    assert back.status_code == 200 and back.get_json()["versions"] == [1, 2]
    assert _ranked(env)["team-a/histogene"] == v2["submission_id"]

    # Duplicate images are still refused, also as a new version of the same name.
    again = _submit(env, "team-a", "histogene", "v2")
    assert again.status_code == 422 and "already submitted" in again.get_json()["error"]
    with session_scope(engine) as session:
        assert session.exec(select(Result).where(
            Result.submission_id == v1["submission_id"])).all()


@pytest.mark.parametrize("field, value, why", [
    ("paper_url", "javascript:alert(1)", "http:// or https://"),
    ("code_url", 'https://x.org/"><script>alert(1)</script>', "RFC 3986"),
    ("paper_url", "https://user:secret@x.org/paper", "credentials"),
    ("code_url", "https://x.org/" + "a" * 500, "at most 500"),
    ("paper_url", "https://ex\u202eample.org", "printable ASCII"),
])
def test_links_are_checked(tmp_path: Path, field: str, value: str, why: str) -> None:
    env = make_env(tmp_path / "home")
    answer = _submit(env, "team-a", "linked", f"link-{field}-{why}", **{field: value})
    assert answer.status_code == 400 and why in answer.get_json()["error"], answer.get_json()


def test_withdraw_over_the_cli_locally_and_against_served_processes(
        fresh_env: LeaderboardEnv, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.leaderboard.test_serve import served

    env = fresh_env
    for key, value in {"SPARED_BENCH_HOME": str(env.home), "DATABASE_URL": env.url,
                       "QUEUE_URL": f"sqlite:///{env.home / 'queue.db'}"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SPARED_BENCH_TOKEN", raising=False)
    monkeypatch.delenv("SPARED_BENCH_SERVER", raising=False)
    archive = env.home / "v2.tar"
    archive.write_bytes(make_archive(nonce="cli-v2")[0])
    token_a, token_b = env.seeded.tokens["team-a"], env.seeded.tokens["team-b"]
    stnet = env.seeded.ids["team-a/stnet"]

    # A second version of a seeded entry, with links, from the local CLI.
    assert main(["submit", str(archive), "--name", "stnet", "--token", token_a,
                 "--paper-url", PAPER, "--code-url", CODE, "--json"]) == 0
    receipt = json.loads(capsys.readouterr().out)
    assert receipt["version"] == 2 and receipt["supersedes"] == stnet
    assert receipt["code_url"] == CODE
    assert main(["submit", str(archive), "--name", "x", "--token", token_a,
                 "--paper-url", "ftp://x.org"]) == 2
    assert "paper_url: expected an http:// or https:// address" in capsys.readouterr().err

    with served(env, "--workers", "2", "--threads", "2") as url:
        import requests

        # Both processes cache the leaderboard first.
        for _ in range(4):
            assert "team-a/stnet" in {e["entry"] for e in requests.get(
                f"{url}/api/leaderboard", timeout=30).json()["entries"]}
        assert main(["withdraw", "team-a/stnet", "--server", url, "--token", token_b]) == 2
        assert "HTTP 403" in capsys.readouterr().err
        assert main(["withdraw", "team-a/stnet", "--version", "1", "--server", url,
                     "--token", token_a]) == 0
        assert "withdrew version 1 of team-a/stnet" in capsys.readouterr().out
        # v2 has no result yet and v1 is withdrawn: the entry shows as not yet ranked.
        for _ in range(4):
            board = requests.get(f"{url}/api/leaderboard", timeout=30).json()
            assert "team-a/stnet" not in {e["entry"] for e in board["entries"]}
            assert requests.get(f"{url}/entries/{stnet}", timeout=30).status_code == 404
        # Locally, as the local operator (no token): put it back; every process sees it.
        assert main(["withdraw", "team-a/stnet", "--version", "1", "--undo"]) == 0
        assert "put back version 1 of team-a/stnet" in capsys.readouterr().out
        for _ in range(4):
            board = requests.get(f"{url}/api/leaderboard", timeout=30).json()
            assert {e["entry"]: e["submission_id"] for e in board["entries"]}[
                "team-a/stnet"] == stnet
        # The owner cannot undo locally with its token either.
        assert main(["withdraw", "team-a/stnet", "--token", token_a]) == 0
        capsys.readouterr()
        assert main(["withdraw", "team-a/stnet", "--undo", "--token", token_a]) == 2
        assert "expected an admin" in capsys.readouterr().err
