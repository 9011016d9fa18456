"""CLI command of the web app: ``spared-bench serve`` runs the leaderboard (embedded default).

By default it runs under gunicorn (threads in one or more worker processes); ``--dev`` uses
Flask's development server instead (one process, no gunicorn). The store and queue are those
of ``DATABASE_URL`` / ``QUEUE_URL`` (default: SQLite files under ``$SPARED_BENCH_HOME``).
"""

from __future__ import annotations

from typing import Any

import click

from evaluator.core.settings import Settings


def gunicorn_application(options: dict[str, Any]) -> Any:
    """A gunicorn application serving ``leaderboard.create_app()`` in each worker process."""
    from gunicorn.app.base import BaseApplication

    class LeaderboardApplication(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from leaderboard import create_app

            return create_app(warm=True)

    return LeaderboardApplication()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="gunicorn worker processes (rate limits and caches are per process).")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Threads per worker process.")
@click.option("--timeout", "timeout_s", type=click.IntRange(10), default=600,
              show_default=True, help="Seconds a request may take (large uploads).")
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn.")
def serve_command(host: str, port: int, workers: int, threads: int, timeout_s: int,
                  dev: bool) -> None:
    """Serve the leaderboard web app: pages, figures, the JSON/CSV API and submissions."""
    settings = Settings.from_env()
    from evaluator.store import redact_url

    click.echo(f"leaderboard on http://{host}:{port}/ (database "
               f"{redact_url(settings.resolved_database_url)})", err=True)
    if dev:
        from leaderboard import create_app

        create_app(settings, warm=True).run(host=host, port=port, threaded=True,
                                            use_reloader=False)
        return
    gunicorn_application({
        "bind": f"{host}:{port}", "workers": workers, "threads": threads,
        "worker_class": "gthread", "timeout": timeout_s, "graceful_timeout": 30,
        "accesslog": "-", "errorlog": "-", "loglevel": "info",
    }).run()


COMMANDS = [serve_command]
