"""Tokens, owners' logs, admin actions, submissions over HTTP, rate limits."""

from __future__ import annotations

from typing import Any

import pytest

from evaluator.orchestrator import SubmissionReceipt, SubmissionStatus
from leaderboard.ratelimit import TokenBucketLimiter
from tests.leaderboard.conftest import LeaderboardEnv, make_env
from tests.orchestrator.archives import make_archive


def test_status_needs_a_valid_token(env: LeaderboardEnv) -> None:
    client = env.client()
    broken = env.seeded.ids["team-b/broken"]
    missing = client.get(f"/api/submissions/{broken}")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "expected an API token" in missing.get_json()["error"]
    unknown = client.get(f"/api/submissions/{broken}",
                         headers={"Authorization": "Bearer sbt_unknown"})
    assert unknown.status_code == 401 and "unknown" in unknown.get_json()["error"]
    wrong_scheme = client.get(f"/api/submissions/{broken}",
                              headers={"Authorization": env.seeded.tokens["team-b"]})
    assert wrong_scheme.status_code == 401


def test_logs_only_for_the_owner_and_admins(env: LeaderboardEnv) -> None:
    client = env.client()
    broken = env.seeded.ids["team-b/broken"]
    own = SubmissionStatus.model_validate(
        client.get(f"/api/submissions/{broken}", headers=env.token("team-b")).get_json())
    failed = [j for j in own.jobs if j.status == "failed"]
    assert len(failed) == 1 and "shapes differ" in (failed[0].log_tail or "")
    assert own.counts == {"failed": 1, "queued": 1, "succeeded": 4}
    other = SubmissionStatus.model_validate(
        client.get(f"/api/submissions/{broken}", headers=env.token("team-a")).get_json())
    assert all(j.log_tail is None for j in other.jobs)
    admin = client.get(f"/api/submissions/{broken}", headers=env.token("baselines")).get_json()
    assert any("shapes differ" in (j["log_tail"] or "") for j in admin["jobs"])
    assert client.get("/api/submissions/99999", headers=env.token("team-b")).status_code == 404


def test_status_by_team_and_name_as_the_readme_writes_it(env: LeaderboardEnv) -> None:
    """`spared-bench status TEAM/NAME --server URL` (it answered 404): the same status as by id,
    through the HTTP route and the client the CLI uses."""
    client = env.client()
    broken = env.seeded.ids["team-b/broken"]
    by_id = client.get(f"/api/submissions/{broken}", headers=env.token("team-b")).get_json()
    by_name = client.get("/api/submissions/team-b/broken", headers=env.token("team-b"))
    assert by_name.status_code == 200 and by_name.get_json() == by_id
    missing = client.get("/api/submissions/team-b/no-such-entry", headers=env.token("team-b"))
    assert missing.status_code == 404
    assert client.get("/api/submissions/team-b/broken").status_code == 401


def test_owner_logs_are_capped(tmp_path: Any) -> None:
    log = "".join(f"line {i:04d} of a long training log\n" for i in range(200)) + "last words\n"
    long_env = make_env(tmp_path / "home", log_cap_bytes=256, log_text=log)
    client = long_env.client()
    broken = long_env.seeded.ids["team-b/broken"]
    status = client.get(f"/api/submissions/{broken}", headers=long_env.token("team-b")).get_json()
    tail = next(j["log_tail"] for j in status["jobs"] if j["status"] == "failed")
    marker = "[… earlier output cut]\n"
    assert tail.startswith(marker) and tail.endswith("last words\n")
    assert len(tail.encode()) == 256 + len(marker.encode())
    page = client.post(f"/entries/{broken}", data={"token": long_env.seeded.tokens["team-b"]})
    html = page.get_data(as_text=True)
    assert "last words" in html and "line 0000" not in html and "(last 256 characters)" in html


@pytest.mark.parametrize("path, body", [
    ("/api/admin/reevaluate", {"baselines": True}),
    ("/api/admin/releases", {"release": "tiny"}),
    ("/api/admin/entries/1/hide", {"hidden": True}),
])
def test_admin_actions_refuse_non_admins(env: LeaderboardEnv, path: str,
                                         body: dict[str, Any]) -> None:
    client = env.client()
    assert client.post(path, json=body).status_code == 401
    refused = client.post(path, json=body, headers=env.token("team-a"))
    assert refused.status_code == 403
    assert "expected an admin token" in refused.get_json()["error"]


def test_admin_reevaluate_queues_failed_jobs_again(fresh_env: LeaderboardEnv) -> None:
    client = fresh_env.client()
    admin = fresh_env.token("baselines")
    broken = fresh_env.seeded.ids["team-b/broken"]
    response = client.post("/api/admin/reevaluate", json={"submission": broken}, headers=admin)
    assert response.status_code == 200
    report = response.get_json()
    assert report["jobs_queued"] == {"team-b/broken": 1}
    assert report["release_id"] == fresh_env.seeded.release_id
    status = client.get(f"/api/submissions/{broken}", headers=admin).get_json()
    assert status["counts"] == {"queued": 2, "succeeded": 4}
    both = client.post("/api/admin/reevaluate", json={"all": True, "baselines": True},
                       headers=admin)
    assert both.status_code == 400 and "exactly one of" in both.get_json()["error"]
    unknown = client.post("/api/admin/reevaluate", json={"baselines": True, "release": "nope"},
                          headers=admin)
    assert unknown.status_code == 404


def test_admin_bodies_are_checked(env: LeaderboardEnv) -> None:
    client = env.client()
    admin = env.token("baselines")
    not_json = client.post("/api/admin/entries/1/hide", data="{nope",
                           content_type="application/json", headers=admin)
    assert not_json.status_code == 400 and "JSON object" in not_json.get_json()["error"]
    a_list = client.post("/api/admin/entries/1/hide", json=[1], headers=admin)
    assert a_list.status_code == 400
    extra = client.post("/api/admin/entries/1/hide", json={"hidden": True, "why": 1},
                        headers=admin)
    assert extra.status_code == 400 and "body.why" in extra.get_json()["error"]
    wrong_type = client.post("/api/admin/entries/1/hide", json={"hidden": "perhaps"},
                             headers=admin)
    assert wrong_type.status_code == 400
    assert client.post("/api/admin/entries/4242/hide", json={}, headers=admin).status_code == 404
    publish = client.post("/api/admin/releases", json={"release": "not-built"}, headers=admin)
    assert publish.status_code == 404 and "not-built" in publish.get_json()["error"]
    too_big = client.post("/api/admin/reevaluate", data=b"{" + b" " * 70_000 + b"}",
                          content_type="application/json", headers=admin)
    assert too_big.status_code == 413


def test_submit_an_archive_over_http(fresh_env: LeaderboardEnv) -> None:
    client = fresh_env.client()
    archive, image_id = make_archive(nonce="web-1")
    response = client.post("/api/submissions?name=web-model&description=from%20the%20web",
                           data=archive, content_type="application/x-tar",
                           headers=fresh_env.token("team-a"))
    assert response.status_code == 201, response.get_json()
    receipt = SubmissionReceipt.model_validate(response.get_json())
    assert receipt.team == "team-a" and receipt.name == "web-model"
    assert receipt.image_digest == image_id
    assert receipt.release_id == fresh_env.seeded.release_id
    assert receipt.jobs_queued == 6
    assert (fresh_env.home / "images").is_dir()
    status = client.get(f"/api/submissions/{receipt.submission_id}",
                        headers=fresh_env.token("team-a")).get_json()
    assert status["counts"] == {"queued": 6}
    # The day's budget after this one (default 5 a day), on the receipt and in the status;
    # queued jobs carry their position on the service.
    assert receipt.submissions_left_today == 4 and status["submissions_left_today"] == 4
    positions = sorted(job["queue_position"] for job in status["jobs"])
    assert len(positions) == 6 and positions == sorted(set(positions)) and positions[0] >= 1
    assert "median wall time" in status["eta_method"]
    board = client.get("/api/leaderboard").get_json()
    listed = next(e for e in board["incomplete"] if e["entry"] == "team-a/web-model")
    assert listed["n_datasets"] == 0 and "queued" in listed["reason"]
    again = client.post("/api/submissions?name=web-model-2", data=archive,
                        content_type="application/x-tar", headers=fresh_env.token("team-b"))
    assert again.status_code == 422 and "already submitted" in again.get_json()["error"]


def test_submission_refusals(tmp_path: Any) -> None:
    small = make_env(tmp_path / "home", max_upload_mb=0.05)
    client = small.client()
    token = small.token("team-a")
    archive, _ = make_archive(nonce="big", layer_bytes=100_000)
    assert client.post("/api/submissions?name=x", data=archive).status_code == 401
    too_big = client.post("/api/submissions?name=big", data=archive,
                          content_type="application/x-tar", headers=token)
    assert too_big.status_code == 413 and "expected at most" in too_big.get_json()["error"]
    no_name = client.post("/api/submissions", data=b"x", headers=token)
    assert no_name.status_code == 400 and "'name'" in no_name.get_json()["error"]
    slash = client.post("/api/submissions?name=a/b", data=b"x", headers=token)
    assert slash.status_code == 400
    not_tar = client.post("/api/submissions?name=junk", data=b"not a tar at all",
                          content_type="application/x-tar", headers=token)
    assert not_tar.status_code == 422 and "tar" in not_tar.get_json()["error"]
    amd = make_archive(nonce="arm", arch="arm64")[0]
    arm = client.post("/api/submissions?name=arm", data=amd, headers=token)
    assert arm.status_code == 422 and "amd64" in arm.get_json()["error"]


def test_daily_limit_answers_429(fresh_env: LeaderboardEnv) -> None:
    from sqlmodel import select

    from evaluator.store import Team, open_store, session_scope

    with session_scope(open_store(fresh_env.url)) as session:
        team = session.exec(select(Team).where(Team.name == "team-b")).one()
        team.daily_submission_limit = 0
        session.add(team)
    archive, _ = make_archive(nonce="limit")
    response = fresh_env.client().post("/api/submissions?name=over", data=archive,
                                       headers=fresh_env.token("team-b"))
    assert response.status_code == 429 and "per UTC day" in response.get_json()["error"]


def test_rate_limits_answer_429_with_retry_after(tmp_path: Any) -> None:
    limited = make_env(tmp_path / "home", read_rate_per_s=0.5, read_burst=3,
                       write_rate_per_min=1.0, write_burst=1)
    client = limited.client()
    codes = [client.get("/api/releases").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = client.get("/")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert client.get("/api/leaderboard").get_json()["error"].startswith("rate limit (read")
    assert client.get("/healthz").status_code == 200
    with client.get("/static/style.css") as static:
        assert static.status_code == 200
    assert client.post("/api/admin/reevaluate", json={}).status_code == 401
    assert client.post("/api/admin/reevaluate", json={}).status_code == 429
    other = limited.app.test_client()
    assert other.get("/api/releases", environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code \
        == 200


def test_token_bucket_refills_at_its_rate() -> None:
    limiter = TokenBucketLimiter(rate_per_s=2.0, burst=2)
    assert limiter.take("a", now=0.0) == 0.0
    assert limiter.take("a", now=0.0) == 0.0
    assert limiter.take("a", now=0.0) == pytest.approx(0.5)
    assert limiter.take("a", now=0.25) == pytest.approx(0.25)
    assert limiter.take("a", now=0.5) == 0.0
    assert limiter.take("b", now=0.5) == 0.0
    assert TokenBucketLimiter(0.0, 1).take("a") == 0.0
    small = TokenBucketLimiter(1.0, 1, max_clients=2)
    for index, key in enumerate(("x", "y", "z")):
        small.take(key, now=float(index * 10))
    assert len(small._buckets) <= 2


def test_predictions_are_for_their_own_team_and_admins(fresh_env: LeaderboardEnv) -> None:
    """The list and the file: the owner (and admins) only; 401, 403, 404 otherwise."""
    import hashlib
    import io

    import numpy as np

    from evaluator.orchestrator.predictions import keep_predictions
    from evaluator.store import Result, open_store, session_scope

    client = fresh_env.client()
    own, other = fresh_env.token("team-a"), fresh_env.token("team-b")
    admin = fresh_env.token("baselines")
    entry = fresh_env.seeded.ids["team-a/vit-delta"]
    listed = client.get(f"/api/predictions?submission={entry}", headers=own)
    assert listed.status_code == 200, listed.get_json()
    files = listed.get_json()
    assert files and all(f["submission_id"] == entry for f in files)
    assert not any(f["kept"] for f in files)  # seeded results: scored, nothing kept
    first = files[0]
    assert client.get(f"/api/predictions/{first['result_id']}", headers=own).status_code == 404
    # Kept under the result's hash: served to the owner, byte for byte an .npy of it.
    array = np.full((3, 2), 0.5, np.float32)
    source = fresh_env.home / "p.npy"
    np.save(source, array)
    sha = hashlib.sha256(array.tobytes()).hexdigest()
    with session_scope(open_store(fresh_env.url)) as session:
        result = session.get(Result, first["result_id"])
        assert result is not None
        result.predictions_sha256 = sha
    keep_predictions(fresh_env.home, source, sha)
    got = client.get(f"/api/predictions/{first['result_id']}", headers=own)
    assert got.status_code == 200 and got.headers["X-Content-SHA256"] == sha
    assert "no-store" in got.headers["Cache-Control"]
    assert np.array_equal(np.load(io.BytesIO(got.get_data())), array)
    got.close()
    by_admin = client.get(f"/api/predictions/{first['result_id']}", headers=admin)
    assert by_admin.status_code == 200
    by_admin.close()
    for url in ("/api/predictions?submission=team-a/vit-delta",
                f"/api/predictions/{first['result_id']}"):
        assert client.get(url).status_code == 401
        assert client.get(url, headers=other).status_code == 403
    assert client.get("/api/predictions", headers=own).status_code == 400
    assert client.post(f"/api/admin/entries/{entry}/hide", json={"hidden": True},
                       headers=admin).status_code == 200
    assert client.get(f"/api/predictions?submission={entry}", headers=other).status_code == 404
    assert client.get(f"/api/predictions?submission={entry}", headers=own).status_code == 200
