"""``spared-bench workers``: list the workers (host, GPUs, current jobs, heartbeat age,
throughput) and manage their tokens (``workers add NAME``, ``workers revoke NAME``).

Without ``--server`` the commands work on the store named by ``DATABASE_URL`` (a local
operator); ``workers --server URL --token ADMIN_TOKEN`` reads ``GET /api/admin/workers``.
"""

from __future__ import annotations

import json
from typing import Any

import click

from evaluator.cli.datasets_cmds import format_rows
from evaluator.core.settings import Settings


def _engine() -> Any:
    from evaluator.store import open_store

    return open_store(Settings.from_env().resolved_database_url)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_workers(report: Any) -> str:
    """The workers of a ``WorkersReport`` as a table (one line per worker)."""
    if not report.workers:
        return "no worker has reported yet"
    rows = []
    for w in report.workers:
        jobs = ", ".join(f"{j.job_id} ({j.dataset}/{j.track})" for j in w.jobs) or "idle"
        gpus = w.gpu_names or w.gpu_ids or "none"
        rows.append([w.name, w.state, w.host, gpus, jobs, _age(w.heartbeat_age_s),
                     w.jobs_last_hour])
    return format_rows(["worker", "state", "host", "gpus", "current jobs", "heartbeat",
                        "jobs/hour"], rows)


@click.group("workers", invoke_without_command=True)
@click.option("--lease-s", type=click.FloatRange(1, 86400), default=60.0, show_default=True,
              help="A worker silent this long is shown as 'silent'.")
@click.option("--server", envvar="SPARED_BENCH_SERVER", default=None,
              help="Ask this service's API (GET /api/admin/workers) instead of the store "
                   "[env SPARED_BENCH_SERVER].")
@click.option("--token", envvar="SPARED_BENCH_TOKEN", default=None,
              help="An admin team's API token, with --server [env SPARED_BENCH_TOKEN].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def workers_group(ctx: click.Context, lease_s: float, server: str | None, token: str | None,
                  as_json: bool) -> None:
    """List the workers: host, GPUs, current jobs, heartbeat age, jobs done in the last hour.

    Sub-commands manage the workers' own tokens (not a team's).
    """
    if ctx.invoked_subcommand is not None:
        return
    if server:
        from evaluator.orchestrator.client import fetch_workers

        report = fetch_workers(server, token or "", lease_s=lease_s)
    else:
        from evaluator.store import WorkersReport, list_workers, session_scope

        with session_scope(_engine()) as session:
            report = WorkersReport(workers=list_workers(session, lease_s=lease_s),
                                   lease_s=lease_s)
    if as_json:
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        click.echo(format_workers(report))


@workers_group.command("add")
@click.argument("name")
def workers_add_command(name: str) -> None:
    """Create worker NAME's token; it is printed once and only its hash is kept."""
    from evaluator.orchestrator.auth import add_worker_token
    from evaluator.store import session_scope

    with session_scope(_engine()) as session:
        secret = add_worker_token(session, name)
    click.echo(secret)
    click.echo(f"worker {name}: store the token now (SPARED_BENCH_WORKER_TOKEN on the worker); "
               "only its hash is kept", err=True)


@workers_group.command("revoke")
@click.argument("name")
def workers_revoke_command(name: str) -> None:
    """Revoke worker NAME's token: refused from its next request on."""
    from evaluator.core.errors import BenchError
    from evaluator.orchestrator.auth import revoke_worker_token
    from evaluator.store import session_scope

    with session_scope(_engine()) as session:
        revoked = revoke_worker_token(session, name)
    if not revoked:
        raise BenchError(f"worker {name!r}: expected a worker with an active token, found none "
                         "(see `spared-bench workers tokens`)")
    click.echo(f"revoked the token of worker {name}")


@workers_group.command("tokens")
def workers_tokens_command() -> None:
    """List the workers' tokens (name, prefix, created, last used, revoked)."""
    from evaluator.orchestrator.auth import list_worker_tokens
    from evaluator.store import session_scope

    def when(value: Any) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else ""

    with session_scope(_engine()) as session:
        rows = [[t.name, t.prefix + "...", when(t.created_at), when(t.last_used_at),
                 when(t.revoked_at)] for t in list_worker_tokens(session)]
    click.echo(format_rows(["worker", "token", "created", "last used", "revoked"], rows)
               if rows else "no worker tokens yet")


COMMANDS: list[click.Command] = [workers_group]
