"""``spared-bench data pull``: the service's public training data, for ``check``."""

from __future__ import annotations

import click

from evaluator.core.settings import Settings
from evaluator.core.text import escape_controls
from evaluator.orchestrator.client import pull_release


@click.command("pull")
@click.option("--server", envvar="SPARED_BENCH_SERVER", required=True,
              help="Leaderboard server URL [env SPARED_BENCH_SERVER].")
@click.option("--release", "ref", default="current", show_default=True,
              help="Release id, unique prefix or label on the server.")
@click.option("--datasets", "names", default=None,
              help="Comma-separated dataset names (default: every dataset of the release).")
def pull_command(server: str, ref: str, names: str | None) -> None:
    """Fetch the public training data of the service's release, to run `check` on it.

    Hash-verified and resumable (run it again after an interruption); nothing of the hidden
    split is fetched. Then: spared-bench check IMAGE --release RELEASE_ID.
    """
    settings = Settings.from_env()
    datasets = [n.strip() for n in names.split(",") if n.strip()] if names else None
    release = pull_release(server, settings.releases_dir, ref=ref, datasets=datasets,
                           say=lambda line: click.echo(escape_controls(line), err=True))
    click.echo(f"pulled release {release.release_id} ({len(release.datasets)} datasets, "
               f"training data) into {release.root}")
    click.echo(f"next: spared-bench check IMAGE --release {release.release_id[:12]}")


COMMANDS: list[click.Command] = [pull_command]
"""This module's commands, in the ``data`` group (``evaluator.cli.app`` registers them)."""
