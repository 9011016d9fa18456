"""Intake (archives, limits, tokens), publishing, re-evaluation and status, on both backends.

Archives here are hand-made and not loaded into an engine (``load=False``, the web app's path);
``test_docker_intake.py`` loads real ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from evaluator.orchestrator import (
    AuthError,
    Bench,
    LimitExceeded,
    OrchestratorError,
    SubmissionRejected,
    create_team,
    get_status,
    issue_token,
    publish_release,
    reevaluate,
    rerun,
    submit_image_archive,
)
from evaluator.orchestrator.images import archive_path
from evaluator.store import (
    Job,
    NotFound,
    Result,
    Submission,
    claim_job,
    complete_job,
    current_release,
    fail_job,
    results_rows,
    session_scope,
)
from tests.conftest import build_test_release
from tests.orchestrator.archives import make_archive, tar_bytes
from tests.orchestrator.conftest import BenchEnv
from tests.store.factories import make_score


@pytest.fixture(scope="session")
def second_release(tmp_path_factory: pytest.TempPathFactory, tiny_processed_dir: Path) -> Any:
    """A release of two of the three tiny datasets (a later data update)."""

    sources = sorted(tiny_processed_dir.glob("*.h5ad"))[:2]
    release, _ = build_test_release(sources, tmp_path_factory.mktemp("releases2"), label="two",
                               cache_dir=tmp_path_factory.mktemp("cache2"))
    return release


def _submit(bench: Bench, tmp_path: Path, name: str, *, nonce: str | None = None,
            **kwargs: Any) -> Any:
    data, _ = make_archive(nonce=nonce or name)
    path = tmp_path / f"{name}.tar"
    path.write_bytes(data)
    return submit_image_archive(bench, path, name=name, load=False, **kwargs)


def _finish_all(bench: Bench, submission_id: int, release_id: str, *, fail: set[str] = frozenset()
                ) -> None:
    """Stand in for a worker: score every queued job of a submission on a release."""
    with session_scope(bench.engine) as session:
        ids = session.exec(select(Job.id).where(Job.submission_id == submission_id,
                                                Job.release_id == release_id,
                                                Job.status == "queued")).all()
    for job_id in ids:
        with session_scope(bench.engine) as session:
            claim = claim_job(session, job_id, "stand-in")
            assert claim is not None
            if claim.dataset in fail:
                fail_job(session, claim, "model", "exit 1", outcome="exit_nonzero",
                         log_text="secret log line")
            else:
                complete_job(session, claim, make_score(claim.dataset, claim.track, release_id,
                                                        seed=job_id))


def test_archive_submission_records_digest_and_queues_every_job(published: BenchEnv,
                                                                tmp_path: Path) -> None:
    bench = published.bench()
    data, image_id = make_archive(nonce="a")
    receipt = submit_image_archive(bench, iter([data[:1000], data[1000:]]), name="m1",
                                   description="first", team="lab", load=False)
    assert receipt.image_digest == image_id
    assert (receipt.team, receipt.platform, receipt.jobs_queued) == ("lab", "linux/amd64", 6)
    # The receipt states the limits its jobs will run under: the service's settings.
    from evaluator.contract import JobLimits

    assert receipt.limits == JobLimits.from_settings(bench.settings)
    kept = archive_path(bench.images_dir, image_id).read_bytes()
    # the same archive, its tags blanked in place (never applied by a load)
    assert len(kept) == len(data) and kept != data
    assert b"handmade:1" in data and b"handmade:1" not in kept
    assert bench.queue.pending() == 6
    with session_scope(bench.engine) as session:
        jobs = session.exec(select(Job)).all()
        submission = session.exec(select(Submission)).one()
    assert {(j.dataset, j.track) for j in jobs} == {
        (d, t) for d in ("mirzazadeh_human_colon_p1", "mirzazadeh_human_prostate_cancer",
                         "villacampa_lung_organoid") for t in ("raw", "spackle")}
    assert submission.image_digest == image_id and submission.description == "first"
    assert not list((bench.images_dir / "incoming").iterdir())


def test_bad_archives_get_clear_messages(published: BenchEnv, tmp_path: Path) -> None:
    bench = published.bench()

    def submit(data: bytes, name: str = "x") -> None:
        path = tmp_path / "bad.tar"
        path.write_bytes(data)
        submit_image_archive(bench, path, name=name, team="lab", load=False)

    with pytest.raises(SubmissionRejected, match="expected an uncompressed tar"):
        submit(b"this is not a tar at all" * 100)
    with pytest.raises(SubmissionRejected, match=r"expected manifest.json inside"):
        submit(tar_bytes({"hello.txt": b"hi"}))
    two = tar_bytes({"manifest.json": b'[{"Config": "a.json"}, {"Config": "b.json"}]'})
    with pytest.raises(SubmissionRejected, match="expected exactly one image, found 2 images"):
        submit(two)
    arm, _ = make_archive(arch="arm64")
    with pytest.raises(SubmissionRejected, match="expected platform linux/amd64, found "
                                                 "linux/arm64"):
        submit(arm)
    good, _ = make_archive(nonce="dup")
    submit(good, "first")
    with pytest.raises(SubmissionRejected, match=r"already submitted as #\d+ \(lab/first\)"):
        submit(good, "second")
    other, _ = make_archive(nonce="other")
    # A name the team used before makes its next version (one row per version).
    submit(other, "first")
    with pytest.raises(SubmissionRejected, match=r"already submitted as #\d+ \(lab/first\)"):
        submit(good, "first")
    with pytest.raises(SubmissionRejected, match="paper_url: expected an http"):
        submit_image_archive(bench, tmp_path / "bad.tar", name="first", team="lab",
                             load=False, paper_url="file:///etc/passwd")
    with session_scope(bench.engine) as session:
        rows = session.exec(select(Submission).order_by(col(Submission.id))).all()
        assert [(s.name, s.version) for s in rows] == [("first", 1), ("first", 2)]


def test_size_and_daily_limits(published: BenchEnv, tmp_path: Path) -> None:
    settings = published.settings().model_copy(update={"max_image_mb": 0.05,
                                                       "daily_submissions": 2})
    bench = Bench.open(settings)
    published.benches.append(bench)
    big, _ = make_archive(layer_bytes=200_000)
    path = tmp_path / "big.tar"
    path.write_bytes(big)
    too_big = r"expected at most 0.05 MB, found more \(stopped reading at 0\.\d+ MB\)"
    with pytest.raises(SubmissionRejected, match=too_big):
        submit_image_archive(bench, path, name="big", team="lab", load=False)
    _submit(bench, tmp_path, "one", team="lab")
    _submit(bench, tmp_path, "two", team="lab")
    with pytest.raises(LimitExceeded, match=r"at most 2 submission.*found 2 already today"):
        _submit(bench, tmp_path, "three", team="lab")
    _submit(bench, tmp_path, "other-team", team="lab2")
    with session_scope(bench.engine) as session:
        create_team(session, "maintainers", admin=True)
    for i in range(3):
        _submit(bench, tmp_path, f"base{i}", team="maintainers", baseline=True)


def test_tokens_decide_the_team(published: BenchEnv, tmp_path: Path) -> None:
    bench = published.bench()
    with session_scope(bench.engine) as session:
        lab = create_team(session, "lab")
        create_team(session, "rival")
    receipt = _submit(bench, tmp_path, "m", by=lab)
    assert receipt.team == "lab"
    with pytest.raises(AuthError, match="expected your own team 'lab'"):
        _submit(bench, tmp_path, "n", by=lab, team="rival")
    with pytest.raises(AuthError, match="expected an admin team to register baselines"):
        _submit(bench, tmp_path, "b", by=lab, baseline=True)


def test_nothing_queued_before_a_release_is_published(bench_env: BenchEnv,
                                                      tmp_path: Path) -> None:
    receipt = _submit(bench_env.bench(), tmp_path, "early", team="lab")
    assert receipt.jobs_queued == 0 and receipt.release_id is None
    assert "no release is published yet" in receipt.message


def test_publishing_queues_baselines_and_keeps_releases_apart(
        bench_env: BenchEnv, tmp_path: Path, tiny_release: Any, second_release: Any) -> None:
    from tests.orchestrator.conftest import _release_into

    bench = bench_env.bench()
    base = _submit(bench, tmp_path, "mean", team="baselines", baseline=True)
    entry = _submit(bench, tmp_path, "entry", team="lab")
    first = publish_release(bench, tiny_release.release_id)
    assert first.jobs_queued == {"baselines/mean": 6}
    # Every baseline is also re-run once on every release (reproducibility).
    assert first.reruns_queued == {"baselines/mean": 6}
    assert first.previous_release_id is None
    _finish_all(bench, base.submission_id, tiny_release.release_id)
    # An entry submitted before the release is queued by a maintainer, not automatically.
    report = reevaluate(bench, "current", submission="lab/entry")
    assert report.jobs_queued == {"lab/entry": 6}
    _finish_all(bench, entry.submission_id, tiny_release.release_id,
                fail={"villacampa_lung_organoid"})
    with session_scope(bench.engine) as session:
        before = {(r["entry"], r["dataset"], r["track"]): r["mse"]
                  for r in results_rows(session, tiny_release.release_id, "raw")}
    assert len(before) == 5

    _release_into(bench_env.home, second_release)
    second = publish_release(bench, "two")
    assert second.previous_release_id == tiny_release.release_id
    assert second.jobs_queued == {"baselines/mean": 4}
    assert second.reruns_queued == {"baselines/mean": 4}
    assert publish_release(bench, "two").reruns_queued == {"baselines/mean": 0}
    with session_scope(bench.engine) as session:
        assert current_release(session).release_id == second_release.release_id
        assert results_rows(session, second_release.release_id, "raw") == []
    _finish_all(bench, base.submission_id, second_release.release_id)
    with session_scope(bench.engine) as session:
        after = {(r["entry"], r["dataset"], r["track"]): r["mse"]
                 for r in results_rows(session, tiny_release.release_id, "raw")}
        newer = results_rows(session, second_release.release_id, "raw")
        results = session.exec(select(Result)).all()
    assert after == before
    assert {r["release_id"] for r in newer} == {second_release.release_id}
    assert len(results) == (6 + 6) + 4 + (4 + 4)
    assert sorted({r.run for r in results if r.submission_id == base.submission_id}) == [0, 1]
    # Every result ran the digest recorded at intake.
    assert {r.image_digest for r in results if r.submission_id == base.submission_id} == \
        {base.image_digest}

    again = reevaluate(bench, tiny_release.release_id, all_entries=True)
    assert again.jobs_queued == {"baselines/mean": 0, "lab/entry": 2}
    assert again.skipped == {"baselines/mean": 6, "lab/entry": 4}


def test_reevaluate_and_publish_refuse_bad_requests(published: BenchEnv, tmp_path: Path) -> None:
    bench = published.bench()
    with session_scope(bench.engine) as session:
        lab = create_team(session, "lab")
    with pytest.raises(NotFound, match="release 'nope' not found"):
        reevaluate(bench, "nope", all_entries=True)
    with pytest.raises(OrchestratorError, match="expected exactly one of"):
        reevaluate(bench, "current", all_entries=True, baselines_only=True)
    with pytest.raises(AuthError, match="expected an admin token"):
        reevaluate(bench, "current", all_entries=True, by=lab)
    with pytest.raises(AuthError, match="publish a release: expected an admin token"):
        publish_release(bench, "tiny", by=lab)
    from evaluator.core.errors import ReleaseNotFound

    with pytest.raises(ReleaseNotFound):
        publish_release(bench, "no-such-release")
    with pytest.raises(NotFound, match="submission"):
        reevaluate(bench, "current", submission="lab/none")
    with pytest.raises(AuthError, match="re-run an entry: expected an admin token"):
        rerun(bench, "baselines/mean", by=lab)


def test_rerun_queues_the_next_run_of_every_job(bench_env: BenchEnv, tmp_path: Path,
                                                tiny_release: Any) -> None:
    bench = bench_env.bench()
    publish_release(bench, tiny_release.release_id, rerun_baselines=False)
    entry = _submit(bench, tmp_path, "entry", team="lab")
    reevaluate(bench, "current", submission="lab/entry")
    _finish_all(bench, entry.submission_id, tiny_release.release_id)
    first = rerun(bench, "lab/entry")
    assert (first.entry, first.run, first.jobs_queued) == ("lab/entry", 1, 6)
    second = rerun(bench, entry.submission_id, release_ref=tiny_release.release_id)
    assert (second.run, second.jobs_queued) == (2, 6)
    _finish_all(bench, entry.submission_id, tiny_release.release_id)
    with session_scope(bench.engine) as session:
        runs = sorted(r.run for r in session.exec(
            select(Result).where(Result.submission_id == entry.submission_id)))
        ranked = results_rows(session, tiny_release.release_id, "raw")
    assert runs == [0] * 6 + [1] * 6 + [2] * 6
    assert len(ranked) == 3


def test_status_shows_logs_to_their_own_team_only(published: BenchEnv, tmp_path: Path) -> None:
    bench = published.bench()
    with session_scope(bench.engine) as session:
        lab = create_team(session, "lab")
        rival = create_team(session, "rival")
        issue_token(session, "lab")
    receipt = _submit(bench, tmp_path, "m", by=lab)
    release_id = receipt.release_id
    _finish_all(bench, receipt.submission_id, release_id, fail={"villacampa_lung_organoid"})
    own = get_status(bench, receipt.submission_id, by=lab)
    assert own.counts == {"succeeded": 4, "failed": 2} and own.done
    failed = [j for j in own.jobs if j.status == "failed"]
    assert {j.log_tail for j in failed} == {"secret log line"}
    assert {j.failure_kind for j in failed} == {"model"}
    assert len(own.results) == 4
    theirs = get_status(bench, "lab/m", by=rival)
    assert all(j.log_tail is None for j in theirs.jobs)
    with session_scope(bench.engine) as session:
        row = session.get(Submission, receipt.submission_id)
        row.hidden = True
        session.add(row)
    with pytest.raises(AuthError, match="hidden"):
        get_status(bench, receipt.submission_id, by=rival)
    with pytest.raises(NotFound):
        get_status(bench, 999)


def test_the_intake_lock_serves_every_user_of_the_store(tmp_path: Path) -> None:
    """Workers and the CLI run as root, the compose web app as uid 10001: a lock file one of
    them created must not stop the other (the web app's uploads answered 500 in the stack)."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    from evaluator.orchestrator.service import _archive_lock

    del tmp_path  # pytest's folders are private to root; this one uid 10001 can reach
    root = Path(tempfile.mkdtemp(prefix="intake-lock-", dir="/tmp"))
    os.chmod(root, 0o755)
    images = root / "images"
    images.mkdir()
    os.chown(images, 10001, 10001)

    class _Bench:
        images_dir = images

    with _archive_lock(_Bench()):  # type: ignore[arg-type]  # as root, as a worker would
        pass
    lock = images / ".intake.lock"
    assert lock.stat().st_uid == 0 and lock.stat().st_mode & 0o777 == 0o644
    script = ("import sys; from pathlib import Path\n"
              "from evaluator.orchestrator.service import _archive_lock\n"
              "class B: images_dir = Path(sys.argv[1])\n"
              "with _archive_lock(B()):\n    print('locked')\n")
    done = subprocess.run(["setpriv", "--reuid", "10001", "--regid", "10001", "--clear-groups",
                           sys.executable, "-c", script, str(images)],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    shutil.rmtree(root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "locked"
