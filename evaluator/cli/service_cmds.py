"""CLI commands of the service: submit, status, withdraw, reevaluate, rerun, teams, queue,
results, db, and ``data publish`` (the worker is ``worker_cmds``).

Without ``--server`` they work on the store and queue named by ``DATABASE_URL`` / ``QUEUE_URL``
(default: SQLite files under ``$SPARED_BENCH_HOME``); with ``--server URL`` ``submit`` and
``status`` talk to the leaderboard web app's API instead.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from sqlmodel import func, select

from evaluator.cli.datasets_cmds import format_rows
from evaluator.core.errors import BenchError
from evaluator.core.settings import Settings
from evaluator.core.text import escape_controls
from evaluator.core.vocabulary import TRACKS
from evaluator.orchestrator import (
    Bench,
    SubmissionStatus,
    authenticate,
    create_team,
    get_status,
    issue_token,
    publish_release,
    reevaluate,
    register_image,
    rerun,
    revoke_token,
    submit_image_archive,
    submit_registry_image,
    wait_for,
    withdraw,
)
from evaluator.orchestrator.client import (
    get_registry_info,
    get_submission_status,
    post_submission,
    post_withdrawal,
)
from evaluator.orchestrator.client import precheck_submission as client_precheck
from evaluator.orchestrator.estimates import TRIES_NOTE
from evaluator.store import (
    Job,
    Submission,
    Team,
    current_revision,
    get_engine,
    get_release_record,
    head_revision,
    redact_url,
    results_frame,
    session_scope,
    upgrade,
)


def _bench() -> Bench:
    return Bench.open(Settings.from_env())


def _by(bench: Bench, token: str | None) -> Team | None:
    """The team a token belongs to, or None (local operator) without a token."""
    if not token:
        return None
    with session_scope(bench.engine) as session:
        return authenticate(session, token)


def _echo_json(model: BaseModel) -> None:
    click.echo(json.dumps(model.model_dump(mode="json"), indent=2))


# -- database -----------------------------------------------------------------------------------


@click.group("db")
def db_group() -> None:
    """The results database (DATABASE_URL; default SQLite under SPARED_BENCH_HOME)."""


@db_group.command("upgrade")
def db_upgrade_command() -> None:
    """Create or migrate the database schema to this version (idempotent)."""
    url = Settings.from_env().resolved_database_url
    revision = upgrade(get_engine(url))
    click.echo(f"database {redact_url(url)} at revision {revision}")


@db_group.command("current")
def db_current_command() -> None:
    """Print the database's schema revision and the one this code expects."""
    url = Settings.from_env().resolved_database_url
    click.echo(f"database {redact_url(url)}: revision {current_revision(get_engine(url))}, "
               f"code expects {head_revision()}")


# -- teams --------------------------------------------------------------------------------------


@click.group("team")
def team_group() -> None:
    """Teams and their API tokens (maintainers)."""


@team_group.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May publish, re-evaluate and register baselines.")
@click.option("--daily-limit", type=click.IntRange(0), default=None,
              help="Submissions per UTC day [default: SPARED_BENCH_DAILY_SUBMISSIONS].")
def team_create_command(name: str, admin: bool, daily_limit: int | None) -> None:
    """Create a team."""
    with session_scope(_bench().engine) as session:
        team = create_team(session, name, admin=admin, daily_limit=daily_limit)
        click.echo(f"created team {team.name!r}{' (admin)' if admin else ''}")


@team_group.command("token")
@click.argument("name")
@click.option("--label", default="", help="A note on what the token is for.")
def team_token_command(name: str, label: str) -> None:
    """Issue an API token for a team; it is printed once and stored hashed."""
    with session_scope(_bench().engine) as session:
        secret = issue_token(session, name, label=label)
    click.echo(secret)
    click.echo("store it now: only its hash is kept", err=True)


@team_group.command("revoke")
@click.argument("prefix")
def team_revoke_command(prefix: str) -> None:
    """Revoke the tokens starting with PREFIX (at least 8 characters, e.g. sbt_AbCd)."""
    with session_scope(_bench().engine) as session:
        count = revoke_token(session, prefix)
    click.echo(f"revoked {count} token(s)")


@team_group.command("list")
def team_list_command() -> None:
    """List teams with their submission counts."""
    with session_scope(_bench().engine) as session:
        teams = session.exec(select(Team).order_by(Team.name)).all()
        rows = [[t.name, "yes" if t.is_admin else "", t.daily_submission_limit or "default",
                 len(session.exec(select(Submission.id).where(Submission.team_id == t.id)).all())]
                for t in teams]
    click.echo(format_rows(["team", "admin", "daily limit", "submissions"], rows)
               if rows else "no teams yet")


# -- submissions --------------------------------------------------------------------------------


def _save_stream(image: str) -> Iterator[bytes]:
    """``docker save`` of a local image, as chunks (nothing is written to disk)."""
    # why here: docker is the worker extra, needed only to send a local image; an author who
    # sends a saved .tar file (or asks for a status) needs no Docker library
    from docker.errors import ImageNotFound

    from evaluator.runners import docker_client

    client = docker_client()
    try:
        saved = client.images.get(image)
    except ImageNotFound as error:
        raise BenchError(f"image {image!r}: expected it on this machine's Docker engine, found "
                         "no such image") from error
    return iter(saved.save(chunk_size=1 << 20, named=True))


def _push(server: str, token: str, image: str, name: str, info: Any) -> str:
    """Check a local image against the server, push it to the server's registry and return
    it by digest."""
    # why here: docker is the worker extra, needed only to send a local image (as
    # _save_stream)
    from docker.errors import ImageNotFound

    from evaluator.orchestrator.push import push_image
    from evaluator.runners import docker_client

    client = docker_client()

    try:
        image_id = client.images.get(image).id
    except ImageNotFound as error:
        raise BenchError(f"image {image!r}: expected it on this machine's Docker engine, found "
                         "no such image") from error
    check = client_precheck(server, token, name=name, image_id=image_id)
    click.echo(escape_controls(f"{image_id[:19]} is new; it will be version {check.version} "
                               f"of {name}; pushing to {info.registry}/{info.namespace}"),
               err=True)
    report = push_image(client, image, registry=info.registry, namespace=info.namespace,
                        token=token, entry=name, image_id=image_id,
                        say=lambda line: click.echo(escape_controls(line), err=True))
    click.echo(f"pushed {report.layers_pushed} layer(s), {report.layers_present} already in "
               f"the registry: {report.ref}", err=True)
    return str(report.ref)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


@click.command("submit")
@click.argument("image")
@click.option("--name", required=True,
              help="Name of the entry; a name your team used before makes its next version, "
                   "which replaces the older one on the leaderboard once it has results.")
@click.option("--description", default="", help="What the model is, in a sentence or two.")
@click.option("--paper-url", default=None, help="http(s) link to the model's paper.")
@click.option("--code-url", default=None, help="http(s) link to the model's code.")
@click.option("--team", default=None,
              help="Local use: the team submitting [default: your token's team, else 'local'].")
@click.option("--token", envvar="SPARED_BENCH_TOKEN", default=None,
              help="API token [env SPARED_BENCH_TOKEN]; required with --server.")
@click.option("--server", envvar="SPARED_BENCH_SERVER", default=None,
              help="Leaderboard URL to submit to [env SPARED_BENCH_SERVER; default: local].")
@click.option("--baseline", is_flag=True, help="Register as a baseline (admins, local use).")
@click.option("--no-archive", is_flag=True,
              help="Local image: do not keep a `docker save` archive for workers on other "
                   "engines (every worker shares this engine).")
@click.option("--archive", "force_archive", is_flag=True,
              help="With --server: upload a `docker save` archive even when the server has a "
                   "registry (by default only the layers the registry lacks are pushed).")
@click.option("--wait", "wait_s", type=click.FloatRange(0), default=None,
              help="Local use: wait up to this many seconds for the jobs to finish.")
@click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON.")
def submit_command(image: str, name: str, description: str, paper_url: str | None,
                   code_url: str | None, team: str | None,
                   token: str | None, server: str | None, baseline: bool, no_archive: bool,
                   force_archive: bool, wait_s: float | None, as_json: bool) -> None:
    """Submit IMAGE for evaluation: an image on this engine, a `docker save` .tar file, or an
    image pushed to the service's registry (REGISTRY/team-ID/REPO@sha256:DIGEST).

    With --server, a local image goes to the server's registry when it has one: the image is
    checked against the server first (an image submitted before is refused before any
    upload), then pushed (only the layers the registry lacks travel) and submitted by digest.
    Locally the image is loaded (or registered), its content digest recorded, and one job per
    dataset and track of the current release is queued; `spared-bench worker` runs them.
    """
    is_file = Path(image).is_file()
    by_digest = "@sha256:" in image and not is_file
    if server:
        if not token:
            raise BenchError("--server: expected an API token (--token or SPARED_BENCH_TOKEN), "
                             "found none")
        links: dict[str, Any] = {"name": name, "description": description,
                                 "paper_url": paper_url, "code_url": code_url}
        info = None if is_file or by_digest or force_archive else \
            get_registry_info(server, token)
        if by_digest:
            receipt = post_submission(server, token, image_ref=image, **links)
        elif info is not None:
            receipt = post_submission(server, token, image_ref=_push(server, token, image,
                                                                     name, info), **links)
        else:
            chunks = _file_chunks(Path(image)) if is_file else _save_stream(image)
            receipt = post_submission(server, token, chunks, **links)
    else:
        bench = _bench()
        by = _by(bench, token)
        if by_digest:
            receipt = submit_registry_image(bench, image, name=name, description=description,
                                            by=by, team=team, baseline=baseline,
                                            paper_url=paper_url, code_url=code_url)
        elif is_file:
            receipt = submit_image_archive(bench, Path(image), name=name,
                                           description=description, by=by, team=team,
                                           baseline=baseline, paper_url=paper_url,
                                           code_url=code_url)
        else:
            receipt = register_image(bench, image, name=name, description=description, by=by,
                                     team=team, baseline=baseline, keep_archive=not no_archive,
                                     paper_url=paper_url, code_url=code_url)
    if as_json:
        _echo_json(receipt)
    else:
        click.echo(escape_controls(
            f"submission #{receipt.submission_id} {receipt.team}/{receipt.name}: "
            f"{receipt.image_digest[:19]} ({receipt.platform}, "
            f"{receipt.size_bytes / 2**20:.0f} MB); {receipt.message}"
            + (f"; {receipt.submissions_left_today} submission(s) left today (UTC)"
               if receipt.submissions_left_today is not None else "")))
    if wait_s is not None and not server:
        final = wait_for(bench, receipt.submission_id, timeout_s=wait_s)
        _print_status(final, logs=False)


def _print_status(status: SubmissionStatus, *, logs: bool) -> None:
    click.echo(escape_controls(
        f"submission #{status.submission_id} {status.team}/{status.name} "
        f"({status.image_digest[:19]}){' [baseline]' if status.is_baseline else ''}"))
    by_status = status.counts
    if status.jobs:  # your own: failures by what failed, in the contract's names
        by_status = dict(Counter(job.status_name().split(" #")[0] for job in status.jobs))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "no jobs"
    click.echo(f"jobs: {counts}")
    scores = {(r["release_id"], r["dataset"], r["track"]): r for r in status.results}
    rows = []
    for job in status.jobs:
        result = scores.get((job.release_id, job.dataset, job.track))
        rows.append([job.release_id[:12], job.dataset, job.track, job.status_name(),
                     f"{job.attempts}/{job.max_attempts}",
                     f"{result['mse']:.4f}" if result else "",
                     f"{result['pcc_gene']:.4f}" if result else "",
                     job.message[:80]])
    if rows:
        click.echo(format_rows(["release", "dataset", "track", "status", "tries", "MSE",
                                "PCC-Gene", "message"], rows))
        click.echo(TRIES_NOTE)
    if status.eta_method:
        click.echo(f"queue: {status.eta_method}")
    if status.submissions_left_today is not None:
        click.echo(f"submissions left today (UTC) for team {escape_controls(status.team)}: "
                   f"{status.submissions_left_today}")
    if logs:
        for job in status.jobs:
            if job.log_tail and job.status == "failed":
                click.echo(f"\n--- log of job {job.job_id} ({job.dataset}/{job.track}, "
                           f"{job.status_name()}) ---")
                click.echo(escape_controls(job.log_tail.rstrip(), keep_newlines=True))


@click.command("status")
@click.argument("submission")
@click.option("--token", envvar="SPARED_BENCH_TOKEN", default=None,
              help="API token [env SPARED_BENCH_TOKEN]; logs are shown to their own team only.")
@click.option("--server", envvar="SPARED_BENCH_SERVER", default=None,
              help="Leaderboard URL [env SPARED_BENCH_SERVER; default: local].")
@click.option("--no-logs", is_flag=True, help="Leave out the logs of failed jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_command(submission: str, token: str | None, server: str | None, no_logs: bool,
                   as_json: bool) -> None:
    """Show a submission's jobs, results and (your own) logs; SUBMISSION is an id or TEAM/NAME."""
    if server:
        if not token:
            raise BenchError("--server: expected an API token (--token or SPARED_BENCH_TOKEN), "
                             "found none")
        status = get_submission_status(server, token, submission)
    else:
        bench = _bench()
        status = get_status(bench, submission, by=_by(bench, token), logs=not no_logs)
    if as_json:
        _echo_json(status)
    else:
        _print_status(status, logs=not no_logs)


@click.command("withdraw")
@click.argument("entry")
@click.option("--version", "version", type=click.IntRange(1), default=None,
              help="Withdraw this version only [default: every version of the entry].")
@click.option("--undo", is_flag=True,
              help="Put the withdrawn version(s) back (admins and local operators only).")
@click.option("--token", envvar="SPARED_BENCH_TOKEN", default=None,
              help="API token [env SPARED_BENCH_TOKEN]; required with --server.")
@click.option("--server", envvar="SPARED_BENCH_SERVER", default=None,
              help="Leaderboard URL [env SPARED_BENCH_SERVER; default: local].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def withdraw_command(entry: str, version: int | None, undo: bool, token: str | None,
                     server: str | None, as_json: bool) -> None:
    """Withdraw ENTRY (TEAM/NAME or a submission id) from the leaderboard and public pages.

    Your team and the admins still see it and its results; only an admin can put it back.
    Withdrawing the newest version ranks the previous version with results again.
    """
    if server:
        if not token:
            raise BenchError("--server: expected an API token (--token or SPARED_BENCH_TOKEN), "
                             "found none")
        report = post_withdrawal(server, token, entry, version=version, withdrawn=not undo)
    else:
        bench = _bench()
        report = withdraw(bench, entry, version=version, by=_by(bench, token),
                          withdrawn=not undo)
    if as_json:
        _echo_json(report)
    else:
        click.echo(escape_controls(report.message))


# -- workers, queue, re-evaluation --------------------------------------------------------------


@click.command("reevaluate")
@click.option("--release", "release_ref", required=True,
              help="A published release: id, prefix, label or 'current'.")
@click.option("--all", "all_entries", is_flag=True, help="Every visible entry.")
@click.option("--baselines", "baselines_only", is_flag=True, help="Every baseline.")
@click.option("--submission", default=None, help="One entry: id or TEAM/NAME.")
@click.option("--token", envvar="SPARED_BENCH_TOKEN", default=None,
              help="An admin token [default: local operator].")
def reevaluate_command(release_ref: str, all_entries: bool, baselines_only: bool,
                       submission: str | None, token: str | None) -> None:
    """Queue entries on a release; each runs its recorded image digest (never a tag)."""
    bench = _bench()
    report = reevaluate(bench, release_ref, submission=submission, all_entries=all_entries,
                        baselines_only=baselines_only, by=_by(bench, token))
    rows = [[entry, queued, report.skipped.get(entry, 0)]
            for entry, queued in report.jobs_queued.items()]
    click.echo(f"release {report.release_id[:12]}: queued "
               f"{sum(report.jobs_queued.values())} job(s)")
    if rows:
        click.echo(format_rows(["entry", "jobs queued", "already there"], rows))


@click.command("rerun")
@click.argument("submission")
@click.option("--release", "release_ref", default="current", show_default=True,
              help="A published release: id, prefix, label or 'current'.")
@click.option("--token", envvar="SPARED_BENCH_TOKEN", default=None,
              help="An admin token [default: local operator].")
def rerun_command(submission: str, release_ref: str, token: str | None) -> None:
    """Re-run an entry's jobs on a release (same digest) to check that it is reproducible."""
    bench = _bench()
    report = rerun(bench, submission, release_ref=release_ref, by=_by(bench, token))
    click.echo(f"release {report.release_id[:12]}: {report.entry} run {report.run}, "
               f"{report.jobs_queued} job(s) queued")


@click.command("queue")
@click.option("--flush", is_flag=True, help="Drop every message (the database keeps the jobs; "
                                            "workers re-enqueue queued ones).")
def queue_command(flush: bool) -> None:
    """Show the queue (messages waiting, delayed) and the jobs by status."""
    bench = _bench()
    if flush:
        bench.queue.flush()
    with session_scope(bench.engine) as session:
        counts = dict(session.exec(select(Job.status, func.count()).group_by(Job.status)).all())
    click.echo(f"queue {bench.queue.kind}: {bench.queue.pending()} waiting, "
               f"{bench.queue.scheduled()} delayed")
    click.echo("jobs: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                           or "none"))


@click.command("results")
@click.option("--release", "release_ref", default="current", show_default=True,
              help="A published release: id, prefix, label or 'current'.")
@click.option("--track", type=click.Choice(TRACKS), default="raw",
              show_default=True)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (the input of `stats`).")
def results_command(release_ref: str, track: str, as_csv: bool) -> None:
    """Print the stored results of one release and track (entry x dataset)."""
    with session_scope(_bench().engine) as session:
        record = get_release_record(session, release_ref)
        frame = results_frame(session, record.release_id, track)
    if as_csv:
        click.echo(frame.to_csv(index=False), nl=False)
        return
    if frame.empty:
        click.echo(f"no results on release {record.release_id[:12]} ({track}) yet")
        return
    rows = [[r.entry, r.dataset, f"{r.mse:.4f}", f"{r.pcc_gene:.4f}"]
            for r in frame.itertuples()]
    click.echo(f"release {record.release_id[:12]}, track {track}")
    click.echo(format_rows(["entry", "dataset", "MSE", "PCC-Gene"], rows))


@click.command("publish")
@click.argument("release_ref")
@click.option("--no-baselines", is_flag=True, help="Do not queue the baselines on it.")
def publish_command(release_ref: str, no_baselines: bool) -> None:
    """Make a built release current and queue every baseline on it."""
    report = publish_release(_bench(), release_ref, queue_baselines=not no_baselines)
    before = report.previous_release_id
    click.echo(f"release {report.release_id[:12]} ({report.label or 'no label'}) is current"
               + (f" (was {before[:12]})" if before and before != report.release_id else ""))
    for entry, count in report.jobs_queued.items():
        click.echo(f"  queued {count} job(s) of baseline {entry}"
                   f" and {report.reruns_queued.get(entry, 0)} of its re-run")


COMMANDS: list[click.Command] = [db_group, team_group, submit_command, status_command,
                                 withdraw_command, reevaluate_command, rerun_command,
                                 queue_command, results_command, publish_command]
"""This module's commands (``evaluator.cli.app`` registers them; ``publish`` under ``data``)."""
