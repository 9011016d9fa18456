"""CLI command of the web app: ``spared-bench serve`` runs the leaderboard (embedded default).

By default it runs under waitress (``leaderboard.serving``): requests are buffered by an event
loop before an app thread runs them, with time limits on slow clients; ``--workers N`` forks N
such processes sharing one listening socket. ``--dev`` uses Flask's development server instead.
The store and queue are those of ``DATABASE_URL`` / ``QUEUE_URL`` (default: SQLite files under
``$SPARED_BENCH_HOME``). The compose image runs this same command (``images/leaderboard``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys

import click

from evaluator.core.settings import Settings
from evaluator.store import redact_url
from leaderboard import create_app
from leaderboard.serving import ServerLimits, make_server

UPLOAD_SLACK_BYTES = 1 << 20
"""Body bytes the server lets through above the app's upload limit (the app answers 413)."""


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def _serve_one(settings: Settings, host: str, port: int, sock: socket.socket | None,
               limits: ServerLimits) -> None:
    """Build the app and serve it in this process until SIGTERM or SIGINT."""
    app = create_app(settings, warm=True)
    max_body = app.extensions["spared_bench"].max_upload_bytes + UPLOAD_SLACK_BYTES
    limits = limits.model_copy(update={"max_body_bytes": max_body})
    server = make_server(app, host, port, limits, sock=sock)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.close()


def _fork_workers(settings: Settings, host: str, port: int, workers: int,
                  limits: ServerLimits) -> None:
    """Serve from ``workers`` forked processes on one socket; stop them all when one dies."""
    sock = _listen(host, port)
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the child serves and never returns
            code = 0
            try:
                _serve_one(settings, host, port, sock, limits)
            except BaseException:
                logging.getLogger(__name__).exception("web worker failed")
                code = 1
            os._exit(code)
        children.append(pid)
    sock.close()

    def stop(*_args: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    remaining = set(children)
    while remaining:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        remaining.discard(pid)
        if os.waitstatus_to_exitcode(status) != 0 and code == 0:
            code = 1
            click.echo(f"web worker {pid} ended with status {status}; stopping the others",
                       err=True)
            stop()
    sys.exit(code)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes (rate limits and caches are per process).")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True,
              help="App threads per process (slow clients hold none of them).")
@click.option("--header-timeout-s", type=click.FloatRange(min=1), default=20.0,
              show_default=True, help="Seconds a request's headers may take to arrive.")
@click.option("--upload-timeout-s", type=click.FloatRange(min=1), default=3600.0,
              show_default=True, help="Seconds a whole request (an upload) may take to arrive.")
@click.option("--idle-timeout-s", type=click.IntRange(min=1), default=60, show_default=True,
              help="Seconds a connection may stay silent before it is closed.")
@click.option("--dev", is_flag=True, help="Flask's development server (no time limits).")
def serve_command(host: str, port: int, workers: int, threads: int, header_timeout_s: float,
                  upload_timeout_s: float, idle_timeout_s: int, dev: bool) -> None:
    """Serve the leaderboard web app: pages, figures, the JSON/CSV API and submissions.

    The address shown in the guide and the OpenAPI document is ``SPARED_BENCH_PUBLIC_URL``
    (default: ``http://HOST:PORT`` unless HOST is a wildcard address).
    """
    settings = Settings.from_env()
    if settings.public_url is None and host not in ("0.0.0.0", "::", ""):
        # Our own address, from our own options: the documents never echo a client's Host.
        shown = f"[{host}]" if ":" in host else host
        settings = settings.model_copy(update={"public_url": f"http://{shown}:{port}"})
    click.echo(f"leaderboard on http://{host}:{port}/ (database "
               f"{redact_url(settings.resolved_database_url)})", err=True)
    if dev:
        create_app(settings, warm=True).run(host=host, port=port, threaded=True,
                                            use_reloader=False)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                   "%(message)s")
    limits = ServerLimits(threads=threads, header_timeout_s=header_timeout_s,
                          upload_timeout_s=upload_timeout_s, idle_timeout_s=idle_timeout_s)
    if workers == 1:
        _serve_one(settings, host, port, None, limits)
    else:
        _fork_workers(settings, host, port, workers, limits)


COMMANDS: list[click.Command] = [serve_command]
"""This module's commands (``evaluator.cli.app`` registers them)."""
