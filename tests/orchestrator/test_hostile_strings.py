"""Author bytes no store holds as they are, through real workers on SQLite and Postgres.

NUL and invalid UTF-8 in a log, NUL and lone surrogates in model.json, NaN and deep nesting in
model.json, a file name that is not UTF-8 in a failure message: every job ends after one attempt
with its result (or its model failure) kept. A store that refuses a record for good still ends
the job cleanly; a failed submission re-evaluated runs again (its old attempt rows stay).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from evaluator.orchestrator import get_status, reevaluate, register_image, wait_for
from evaluator.store import Job, JobAttempt, Result, attempts_of, session_scope
from tests.orchestrator.conftest import BenchEnv, publish_small

pytestmark = [pytest.mark.docker, pytest.mark.slow]

FAST = ["--lease-s", "4", "--heartbeat-s", "0.5", "--reap-interval-s", "1",
        "--retry-delay-s", "1", "--timeout-s", "120", "--mem-limit-gb", "1", "--cpus", "1"]


def _finish(bench: Any, env: BenchEnv, submission_id: int, name: str) -> Any:
    try:
        return wait_for(bench, submission_id, timeout_s=240, poll_s=0.5)
    except Exception:
        print(env.worker_log(name)[-4000:])
        raise


def _jobs(bench: Any, submission_id: int) -> list[Job]:
    with session_scope(bench.engine) as session:
        return list(session.exec(select(Job).where(Job.submission_id == submission_id)))


def test_hostile_strings_keep_every_result_after_one_attempt(
        bench_env: BenchEnv, small_release: Any, build_image: Any,
        remove_worker_containers: list[str]) -> None:
    bench = publish_small(bench_env, small_release)
    receipts = {mode: register_image(bench, build_image(mode), name=mode, team="lab")
                for mode in ("hostile", "hostile-nan", "hostile-link")}
    remove_worker_containers.append("w-hostile")
    bench_env.start_worker("w-hostile", *FAST)
    statuses = {mode: _finish(bench, bench_env, r.submission_id, "w-hostile")
                for mode, r in receipts.items()}
    assert statuses["hostile"].counts == {"succeeded": 2}
    assert statuses["hostile-nan"].counts == {"succeeded": 2}
    assert statuses["hostile-link"].counts == {"failed": 2}
    for receipt in receipts.values():
        assert all(job.attempts == 1 for job in _jobs(bench, receipt.submission_id))
    with session_scope(bench.engine) as session:
        results = {r.submission_id: r for r in session.exec(select(Result))}
        attempts = list(session.exec(select(JobAttempt)))
    card = results[receipts["hostile"].submission_id].score["model_card"]
    assert card == {"name": "hostile\ufffd", "parameters": {"k\ufffd": "v\ufffd"},
                    "notes": "lone \ufffd"}
    assert "model_card" not in results[receipts["hostile-nan"].submission_id].score
    hostile_logs = [a.log_text for a in attempts if "nul" in a.log_text]
    assert hostile_logs and all("nul\ufffdbyte" in t for t in hostile_logs)
    nan_status = get_status(bench, receipts["hostile-nan"].submission_id)
    assert all("NaN (not valid JSON" in job.message for job in nan_status.jobs)
    link_status = get_status(bench, receipts["hostile-link"].submission_id)
    for job in link_status.jobs:
        assert job.failure_kind == "model" and "link-\ufffd" in job.message
        assert "\x00" not in job.message
    assert "Traceback" not in bench_env.worker_log("w-hostile")


_REFUSE_SQLITE = {
    "log": """CREATE TRIGGER refuse_log BEFORE UPDATE ON job_attempts
              WHEN NEW.log_text LIKE '%predicting%'
              BEGIN SELECT RAISE(ABORT, 'log refused by policy'); END""",
    "result": """CREATE TRIGGER refuse_result BEFORE INSERT ON results
                 BEGIN SELECT RAISE(ABORT, 'result refused by policy'); END""",
    "attempt": """CREATE TRIGGER refuse_attempt BEFORE INSERT ON job_attempts
                  BEGIN SELECT RAISE(ABORT, 'attempt refused by policy'); END""",
}
_REFUSE_POSTGRES = {
    "log": ["""CREATE FUNCTION refuse_log() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN IF NEW.log_text LIKE '%predicting%' THEN
               RAISE EXCEPTION 'log refused by policy'; END IF; RETURN NEW; END $$""",
            """CREATE TRIGGER refuse_log BEFORE UPDATE ON job_attempts
               FOR EACH ROW EXECUTE FUNCTION refuse_log()"""],
    "result": ["""CREATE FUNCTION refuse_result() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN RAISE EXCEPTION 'result refused by policy'; END $$""",
               """CREATE TRIGGER refuse_result BEFORE INSERT ON results
                  FOR EACH ROW EXECUTE FUNCTION refuse_result()"""],
    "attempt": ["""CREATE FUNCTION refuse_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN RAISE EXCEPTION 'attempt refused by policy'; END $$""",
                """CREATE TRIGGER refuse_attempt BEFORE INSERT ON job_attempts
                   FOR EACH ROW EXECUTE FUNCTION refuse_attempt()"""],
}


def _refuse(bench: Any, what: str) -> None:
    statements = ([_REFUSE_SQLITE[what]] if bench.engine.dialect.name == "sqlite"
                  else _REFUSE_POSTGRES[what])
    with bench.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))


def test_a_store_that_refuses_a_record_ends_the_job_cleanly(
        bench_env: BenchEnv, small_release: Any, build_image: Any,
        remove_worker_containers: list[str]) -> None:
    bench = publish_small(bench_env, small_release)
    remove_worker_containers.append("w-refused")
    _refuse(bench, "log")
    kept = register_image(bench, build_image("ok", nonce="refused-log"), name="kept",
                          team="lab")
    bench_env.start_worker("w-refused", *FAST)
    status = _finish(bench, bench_env, kept.submission_id, "w-refused")
    # The log is refused for good: the result is stored without it, after one attempt.
    assert status.counts == {"succeeded": 2}
    for job in status.jobs:
        assert job.attempts == 1
        assert "stored without the submission's log and model card" in job.message
        assert "log refused by policy" in job.message
    _refuse(bench, "result")
    lost = register_image(bench, build_image("ok", nonce="refused-result"), name="lost",
                          team="lab")
    status = _finish(bench, bench_env, lost.submission_id, "w-refused")
    # Even the stripped result is refused: a final failure with a short message, one attempt.
    assert status.counts == {"failed": 2}
    for job in status.jobs:
        assert job.attempts == 1 and job.failure_kind == "infra"
        assert job.message.startswith("the job's record could not be stored: ")
        assert "result refused by policy" in job.message and len(job.message) < 400
        with session_scope(bench.engine) as session:
            assert [a.outcome for a in attempts_of(session, job.job_id)] == ["store_error"]


def test_a_job_that_cannot_be_claimed_fails_once_instead_of_looping(
        bench_env: BenchEnv, small_release: Any, build_image: Any,
        remove_worker_containers: list[str]) -> None:
    bench = publish_small(bench_env, small_release)
    _refuse(bench, "attempt")
    receipt = register_image(bench, build_image("ok", nonce="unclaimable"), name="stuck",
                             team="lab")
    remove_worker_containers.append("w-unclaimable")
    bench_env.start_worker("w-unclaimable", *FAST)
    status = _finish(bench, bench_env, receipt.submission_id, "w-unclaimable")
    assert status.counts == {"failed": 2}
    for job in status.jobs:
        assert job.failure_kind == "infra" and job.attempts == 0
        assert job.message.startswith("the job could not be claimed: ")
        assert "attempt refused by policy" in job.message
    time.sleep(3)  # several reap rounds: nothing claims the jobs again
    log = bench_env.worker_log("w-unclaimable")
    assert log.count("the claim failed") == 2


def test_reevaluating_a_failed_submission_runs_its_jobs_again(
        sqlite_bench_env: BenchEnv, small_release: Any, build_image: Any,
        remove_worker_containers: list[str]) -> None:
    bench = publish_small(sqlite_bench_env, small_release)
    receipt = register_image(bench, build_image("crash"), name="crash", team="lab")
    remove_worker_containers.append("w-again")
    sqlite_bench_env.start_worker("w-again", *FAST)
    assert _finish(bench, sqlite_bench_env, receipt.submission_id,
                   "w-again").counts == {"failed": 2}
    report = reevaluate(bench, small_release.release_id, submission=receipt.submission_id)
    assert sum(report.jobs_queued.values()) == 2
    status = _finish(bench, sqlite_bench_env, receipt.submission_id, "w-again")
    assert status.counts == {"failed": 2}
    for job in status.jobs:
        with session_scope(bench.engine) as session:
            numbers = [a.attempt for a in attempts_of(session, job.job_id)]
        assert numbers == [1, 2] and job.attempts == 1
    log = sqlite_bench_env.worker_log("w-again")
    assert "UNIQUE" not in log and "IntegrityError" not in log


@pytest.mark.parametrize("mode", ["hostile", "hostile-nan", "hostile-link"])
def test_the_cli_reports_hostile_strings_without_a_traceback(
        sqlite_bench_env: BenchEnv, small_release: Any, build_image: Any, mode: str) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    from tests.orchestrator.conftest import _release_into

    _release_into(sqlite_bench_env.home, small_release)
    report = sqlite_bench_env.home / "report.json"
    done = subprocess.run(
        [str(Path(sys.executable).parent / "spared-bench"), "evaluate", build_image(mode),
         "--release", small_release.release_id, "--report", str(report),
         "--time-limit-s", "120", "--mem-limit-gb", "1", "--cpus", "1"],
        env=sqlite_bench_env.env, capture_output=True, timeout=600, check=False)
    output = (done.stdout + done.stderr).decode("utf-8")  # valid UTF-8, no surrogate escapes
    assert "Traceback" not in output
    assert done.returncode == (1 if mode == "hostile-link" else 0), output[-3000:]
    written = json.loads(report.read_text())
    assert len(written["results"]) == 2
    assert report.with_suffix(".csv").read_text().count("\n") == 3
    statuses = {r["status"] for r in written["results"]}
    assert statuses == ({"output_invalid"} if mode == "hostile-link" else {"succeeded"})
