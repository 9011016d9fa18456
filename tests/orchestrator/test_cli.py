"""The service commands of `spared-bench`, run as a user would (in-process, real store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaluator.cli import main
from tests.orchestrator.archives import make_archive
from tests.orchestrator.conftest import BenchEnv


@pytest.fixture
def cli_env(sqlite_bench_env: BenchEnv, monkeypatch: pytest.MonkeyPatch) -> BenchEnv:
    for key, value in sqlite_bench_env.env.items():
        if key in {"SPARED_BENCH_HOME", "DATABASE_URL", "QUEUE_URL"}:
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("SPARED_BENCH_TOKEN", raising=False)
    monkeypatch.delenv("SPARED_BENCH_SERVER", raising=False)
    return sqlite_bench_env


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_db_team_and_token_commands(cli_env: BenchEnv, capsys: pytest.CaptureFixture[str]
                                    ) -> None:
    from evaluator.store import head_revision

    head = head_revision()
    assert head == "0005"
    code, out, _ = _run(capsys, "db", "upgrade")
    assert code == 0 and f"at revision {head}" in out
    code, out, _ = _run(capsys, "db", "current")
    assert f"revision {head}, code expects {head}" in out
    assert _run(capsys, "team", "create", "lab", "--daily-limit", "3")[0] == 0
    code, _, err = _run(capsys, "team", "create", "lab")
    assert code == 2 and "error: team 'lab' already exists" in err
    code, out, err = _run(capsys, "team", "token", "lab", "--label", "ci")
    token = out.strip()
    assert code == 0 and token.startswith("sbt_") and "only its hash is kept" in err
    code, out, _ = _run(capsys, "team", "list")
    assert "lab" in out and "3" in out
    code, out, _ = _run(capsys, "team", "revoke", token[:12])
    assert "revoked 1 token(s)" in out


def test_publish_and_bad_requests_read_as_one_line(cli_env: BenchEnv,
                                                   capsys: pytest.CaptureFixture[str],
                                                   tiny_release: Any) -> None:
    code, out, _ = _run(capsys, "data", "publish", "tiny")
    assert code == 0 and f"release {tiny_release.release_id[:12]} (tiny) is current" in out
    code, _, err = _run(capsys, "reevaluate", "--release", "nope", "--all")
    assert code == 2 and err.startswith("error: release 'nope' not found")
    code, _, err = _run(capsys, "reevaluate", "--release", "current")
    assert code == 2 and "expected exactly one of --submission S, --all or --baselines" in err
    code, _, err = _run(capsys, "status", "42")
    assert code == 2 and "error: submission '42' not found" in err
    code, _, err = _run(capsys, "rerun", "lab/none")
    assert code == 2 and "error: submission 'lab/none' not found" in err
    code, _, err = _run(capsys, "rerun", "1", "--release", "nope")
    assert code == 2 and err.startswith("error: release 'nope' not found")
    archive = cli_env.home / "model.tar"
    archive.write_bytes(make_archive()[0])
    code, _, err = _run(capsys, "submit", str(archive), "--name", "m", "--server",
                        "http://127.0.0.1:1", "--token", "sbt_x")
    assert code == 2 and "expected the leaderboard web app to answer, found no answer" in err
    code, _, err = _run(capsys, "submit", str(archive), "--name", "m", "--server",
                        "http://127.0.0.1:1")
    assert code == 2 and "expected an API token" in err
    code, out, _ = _run(capsys, "queue")
    assert "queue sqlite: 0 waiting" in out and "jobs: none" in out
    code, out, _ = _run(capsys, "results")
    assert f"no results on release {tiny_release.release_id[:12]}" in out


@pytest.mark.docker
def test_submit_an_archive_then_status_and_reevaluate(cli_env: BenchEnv, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      docker_engine: Any) -> None:
    assert _run(capsys, "data", "publish", "tiny")[0] == 0
    _run(capsys, "team", "create", "lab")
    token = _run(capsys, "team", "token", "lab")[1].strip()
    data, image_id = make_archive(nonce=tmp_path.name)
    archive = tmp_path / "model.tar"
    archive.write_bytes(data)
    try:
        code, out, err = _run(capsys, "submit", str(archive), "--name", "handmade",
                              "--description", "a test", "--token", token, "--json")
        assert code == 0, err
        receipt = json.loads(out)
        assert receipt["image_digest"] == image_id and receipt["team"] == "lab"
        assert receipt["jobs_queued"] == 6
        assert docker_engine.images.get(image_id).id == image_id
        code, _, err = _run(capsys, "submit", str(archive), "--name", "again", "--token", token)
        assert code == 2 and "already submitted as #1 (lab/handmade)" in err
        code, _, err = _run(capsys, "submit", str(archive), "--name", "x", "--token", "sbt_bad")
        assert code == 2 and "expected a valid API token, found an unknown one" in err
        code, out, _ = _run(capsys, "status", "lab/handmade", "--token", token)
        assert "jobs: queued 6" in out and "villacampa_lung_organoid" in out
        code, out, _ = _run(capsys, "status", "1", "--json")
        assert json.loads(out)["counts"] == {"queued": 6}
        code, out, _ = _run(capsys, "reevaluate", "--release", "current", "--submission", "1")
        assert code == 0 and "queued 0 job(s)" in out
        code, out, _ = _run(capsys, "queue")
        assert "6 waiting" in out and "queued 6" in out
    finally:
        docker_engine.images.remove(image_id, force=True)
