"""The web app against hostile input: names that would inject into figures or spreadsheets,
forged Host and X-Forwarded-For headers, ids and bodies that used to answer 500, and what one
team can learn about another's entries."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from evaluator.store import Job, Submission, open_store, session_scope
from tests.leaderboard.conftest import LeaderboardEnv, make_env
from tests.orchestrator.archives import make_archive

INJECTED = "x' onload='alert(1)' y=\"<b>&"
CONTROL = "ctl\x01\x1b[31mred\x7f"


def _rename(env: LeaderboardEnv, entry: str, name: str) -> int:
    """Give a seeded entry a name as the store might hold it (written before names were
    checked, or by an operator): the views must survive it."""
    submission_id = env.seeded.ids[entry]
    with session_scope(open_store(env.url)) as session:
        row = session.get(Submission, submission_id)
        assert row is not None
        row.name = name
        session.add(row)
    return submission_id


@pytest.mark.parametrize("figure", ["violin", "wins", "ranks", "params", "spackle", "cd",
                                    "entry"])
def test_figures_escape_names_for_attributes_and_content(fresh_env: LeaderboardEnv,
                                                         figure: str) -> None:
    target = _rename(fresh_env, "team-a/vit-delta", INJECTED)
    _rename(fresh_env, "team-a/stnet", CONTROL)
    path = (f"/plots/entries/{target}/spackle.svg" if figure == "entry"
            else f"/plots/{figure}.svg")
    response = fresh_env.client().get(path)
    assert response.status_code == 200
    root = ET.fromstring(response.get_data())  # well-formed XML whatever the names
    for element in root.iter():
        assert not any(key.startswith("on") for key in element.attrib), element.attrib
    text = "".join(root.itertext())
    if figure in ("violin", "ranks"):
        assert "x' onload='alert(1)' y=\"<b>&" in text


def test_significance_diagram_escapes_names(fresh_env: LeaderboardEnv) -> None:
    from evaluator.scoring.cd_diagram import critical_difference_svg

    _rename(fresh_env, "team-a/vit-delta", INJECTED)
    _rename(fresh_env, "team-a/stnet", CONTROL)
    assert fresh_env.client().get("/significance").status_code == 200
    svg = critical_difference_svg({"team-a/" + INJECTED: 1.0, "team-a/" + CONTROL: 2.0,
                                   "b": 3.0}, 0.5, title=INJECTED)
    root = ET.fromstring(svg)
    assert all(not any(k.startswith("on") for k in e.attrib) for e in root.iter())
    assert INJECTED in "".join(root.itertext())


@pytest.mark.parametrize("name", ["png\u202egpj.exe", "zero\u200bwidth", "bell\x07",
                                  "line\u2028sep", "soft\u00adhyphen"])
def test_names_refuse_control_bidi_and_invisible_characters(fresh_env: LeaderboardEnv,
                                                            name: str) -> None:
    from urllib.parse import quote

    from evaluator.orchestrator import create_team
    from evaluator.orchestrator.errors import OrchestratorError

    archive, _ = make_archive(nonce=f"name-{name!r}")
    refused = fresh_env.client().post(f"/api/submissions?name={quote(name)}", data=archive,
                                      content_type="application/x-tar",
                                      headers=fresh_env.token("team-a"))
    assert refused.status_code == 400, refused.get_json()
    with session_scope(open_store(fresh_env.url)) as session, \
            pytest.raises(OrchestratorError, match="team name"):
        create_team(session, name)


def test_names_with_plain_unicode_are_accepted(fresh_env: LeaderboardEnv) -> None:
    archive, _ = make_archive(nonce="unicode-name")
    response = fresh_env.client().post("/api/submissions?name=Réseau-ü 2", data=archive,
                                       content_type="application/x-tar",
                                       headers=fresh_env.token("team-a"))
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("path", ["/api/leaderboard?format=csv", "/api/results?format=csv"])
def test_csv_cells_never_start_a_formula(fresh_env: LeaderboardEnv, path: str) -> None:
    names = {"team-a/vit-delta": "=HYPERLINK(\"http://x\",\"y\")", "team-a/stnet": "+1+2",
             "team-b/hist2st": "@SUM(A1)", "baselines/ridge": "-3"}
    for entry, name in names.items():
        _rename(fresh_env, entry, name)
    body = fresh_env.client().get(path).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert rows
    cells = [cell for row in rows for cell in row.values() if cell]
    assert not [c for c in cells if c[0] in "=+@\t\r" or (c[0] == "-" and not _number(c))]
    shown = {row["name"] for row in rows}
    assert {"'=HYPERLINK(\"http://x\",\"y\")", "'+1+2", "'@SUM(A1)", "'-3"} <= shown
    # Numbers stay numbers (a negative value is a number, not a formula).
    assert all(_number(row["mse"]) for row in rows if row.get("mse"))


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_the_public_url_comes_from_settings_never_from_host(tmp_path: Path) -> None:
    plain = make_env(tmp_path / "plain")
    client = plain.client()
    for path in ("/guide", "/api/openapi.json", "/api"):
        body = client.get(path, headers={"Host": "evil.example"}).get_data(as_text=True)
        assert "evil.example" not in body
    doc = client.get("/api/openapi.json").get_json()
    assert doc["servers"] == [{"url": "/"}]
    assert "--server SERVER_URL" in client.get("/guide").get_data(as_text=True)

    configured = make_env(tmp_path / "configured")
    from evaluator.core.settings import Settings
    from leaderboard import LeaderboardConfig, create_app

    settings = Settings(home=configured.home, database_url=configured.url,
                        queue_url=f"sqlite:///{configured.home / 'queue.db'}",
                        public_url="https://bench.example.org")
    app = create_app(settings, database_url=configured.url,
                     config=LeaderboardConfig(read_rate_per_s=0.0, write_rate_per_min=0.0,
                                              cache_entries=64))
    client = app.test_client()
    guide = client.get("/guide", headers={"Host": "evil.example"}).get_data(as_text=True)
    assert "--server https://bench.example.org" in guide and "evil.example" not in guide
    doc = client.get("/api/openapi.json", headers={"Host": "evil.example"}).get_json()
    assert doc["servers"] == [{"url": "https://bench.example.org"}]
    # Many Host values add nothing to the cache (they were part of its keys).
    cache = app.extensions["spared_bench"].cache
    client.get("/api/leaderboard")
    before = len(cache)
    for i in range(200):
        for path in ("/guide", "/api/openapi.json", "/api"):
            client.get(path, headers={"Host": f"h{i}.example"})
    assert len(cache) <= before + 3
    with pytest.raises(Exception, match="public_url"):
        Settings(public_url="http://x/\x00")


def test_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    direct = make_env(tmp_path / "direct", write_rate_per_min=1.0, write_burst=1)
    client = direct.client()
    codes = [client.post("/api/admin/reevaluate", json={},
                         headers={"X-Forwarded-For": f"10.1.{i}.1"}).status_code
             for i in range(3)]
    assert codes == [401, 429, 429], "a forged X-Forwarded-For must not buy a new bucket"

    proxied = make_env(tmp_path / "proxied", write_rate_per_min=1.0, write_burst=1,
                       trusted_proxies=("127.0.0.1", "10.0.0.0/8"))
    client = proxied.client()

    def post(forwarded: str, remote: str = "127.0.0.1") -> int:
        return client.post("/api/admin/reevaluate", json={},
                           headers={"X-Forwarded-For": forwarded},
                           environ_base={"REMOTE_ADDR": remote}).status_code

    # The proxy appends the address it saw (203.0.113.7); whatever the client wrote before it
    # is the client's to forge and changes nothing.
    assert post("1.1.1.1, 203.0.113.7") == 401
    assert post("2.2.2.2, 203.0.113.7") == 429
    assert post("garbage, 10.0.0.5, 203.0.113.7") == 429
    # Another client behind the same proxy has its own bucket.
    assert post("198.51.100.1") == 401
    # A client that is not a trusted proxy cannot speak for others.
    assert post("203.0.113.99", remote="192.0.2.1") == 401
    assert post("203.0.113.100", remote="192.0.2.1") == 429


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/entries/{huge}"), ("GET", "/api/submissions/{huge}"),
    ("GET", "/entries/{huge}"), ("POST", "/api/admin/entries/{huge}/hide"),
    ("GET", "/api/submissions/9223372036854775807"),
])
def test_ids_past_64_bits_are_not_found(env: LeaderboardEnv, method: str, path: str) -> None:
    url = path.format(huge=2**64 + 5)
    response = env.client().open(url, method=method, json={} if method == "POST" else None,
                                 headers=env.token("baselines"))
    assert response.status_code == 404, response.get_data(as_text=True)[:300]


@pytest.mark.parametrize("body", [
    {"submission": 2**64}, {"submission": -1}, {"release": "current", "submission": 10**30},
])
def test_admin_bodies_with_ids_past_64_bits_are_refused(env: LeaderboardEnv,
                                                        body: dict[str, Any]) -> None:
    for path in ("/api/admin/reevaluate", "/api/admin/rerun"):
        response = env.client().post(path, json=body, headers=env.token("baselines"))
        assert response.status_code == 400, response.get_data(as_text=True)[:300]


def test_deeply_nested_json_bodies_are_refused(env: LeaderboardEnv) -> None:
    for depth in (100, 30_000):
        body = "[" * depth + "]" * depth
        for path in ("/api/admin/reevaluate", "/api/admin/entries/1/hide"):
            response = env.client().post(path, data=body, content_type="application/json",
                                         headers=env.token("baselines"))
            assert response.status_code == 400, (depth, response.get_data(as_text=True)[:200])
    nested = json.dumps({"hidden": True, "x": json.loads("[" * 500 + "]" * 500)})
    response = env.client().post("/api/admin/entries/1/hide", data=nested,
                                 content_type="application/json", headers=env.token("baselines"))
    assert response.status_code == 400


def test_a_10000_character_description_is_taken(fresh_env: LeaderboardEnv) -> None:
    from urllib.parse import quote

    archive, _ = make_archive(nonce="long-description")
    description = "é" * 10_000
    response = fresh_env.client().post(
        f"/api/submissions?name=long&description={quote(description)}", data=archive,
        content_type="application/x-tar", headers=fresh_env.token("team-a"))
    assert response.status_code == 201, response.get_json()
    nul = fresh_env.client().post("/api/submissions?name=nul&description=a%00b", data=archive,
                                  content_type="application/x-tar",
                                  headers=fresh_env.token("team-a"))
    assert nul.status_code == 400


def test_another_teams_status_shows_no_jobs_and_no_workers(env: LeaderboardEnv) -> None:
    client = env.client()
    broken = env.seeded.ids["team-b/broken"]
    other = client.get(f"/api/submissions/{broken}", headers=env.token("team-a")).get_json()
    assert other["jobs"] == [] and other["counts"] == {"failed": 1, "queued": 1, "succeeded": 4}
    assert other["name"] == "broken"
    assert "seed-worker" not in json.dumps(other)
    own = client.get(f"/api/submissions/{broken}", headers=env.token("team-b")).get_json()
    assert len(own["jobs"]) == 6 and all(j["worker"] is None for j in own["jobs"])
    admin = client.get(f"/api/submissions/{broken}", headers=env.token("baselines")).get_json()
    assert {j["worker"] for j in admin["jobs"] if j["status"] != "queued"} == {"seed-worker"}


def test_a_duplicate_of_a_hidden_entry_does_not_name_it(fresh_env: LeaderboardEnv) -> None:
    client = fresh_env.client()
    archive, _ = make_archive(nonce="secret-entry")
    first = client.post("/api/submissions?name=secret-plan", data=archive,
                        content_type="application/x-tar", headers=fresh_env.token("team-a"))
    assert first.status_code == 201
    submission_id = first.get_json()["submission_id"]
    assert client.post(f"/api/admin/entries/{submission_id}/hide", json={"hidden": True},
                       headers=fresh_env.token("baselines")).status_code == 200
    again = client.post("/api/submissions?name=copy", data=archive,
                        content_type="application/x-tar", headers=fresh_env.token("team-b"))
    assert again.status_code == 422
    message = again.get_json()["error"]
    assert "already submitted by another team" in message
    assert "secret-plan" not in message and "team-a" not in message
    assert f"#{submission_id}" not in message
    own = client.post("/api/submissions?name=copy", data=archive,
                      content_type="application/x-tar", headers=fresh_env.token("team-a"))
    assert own.status_code == 422 and "secret-plan" in own.get_json()["error"]


def test_public_reasons_never_quote_job_messages(fresh_env: LeaderboardEnv) -> None:
    broken = fresh_env.seeded.ids["team-b/broken"]
    with session_scope(open_store(fresh_env.url)) as session:
        job = session.exec(select(Job).where(Job.submission_id == broken,
                                             Job.status == "failed")).one()
        job.message = "FileNotFoundError: /var/lib/spared-bench/work/w1/spared-job-x/output"
        session.add(job)
    board = fresh_env.client().get("/api/leaderboard").get_json()
    listed = next(e for e in board["incomplete"] if e["submission_id"] == broken)
    assert "failed (the model's own failure)" in listed["reason"]
    assert "/var/lib" not in json.dumps(board)
    page = fresh_env.client().get("/").get_data(as_text=True)
    assert "/var/lib" not in page
    csv_text = fresh_env.client().get("/api/leaderboard?format=csv").get_data(as_text=True)
    assert "/var/lib" not in csv_text
