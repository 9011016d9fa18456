"""Root of the ``spared-bench`` command: groups every sub-command, turns errors into messages.

Each area keeps its commands in its own module (``datasets_cmds``, ``scoring_cmds``,
``completion_cmds``, ...), with what they need imported at its top. This module names every
command with the module that defines it (``COMMANDS``, ``DATA_COMMANDS``) and imports that
module only when the command runs: ``spared-bench --help`` loads none of them, and a command
needs only its own dependencies (a core install runs ``status --server`` without torch or
docker). The listings show each entry's one-line help; ``tests/test_cli_commands.py`` checks
that it is the command's own.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Any

import click

from evaluator import __version__
from evaluator.core.errors import BenchError
from evaluator.core.text import escape_controls

EXIT_USER_ERROR = 2
# Modules of the package extras (pyproject.toml): a command that needs one names the extra.
EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "science", "squidpy": "science", "scanpy": "science", "combat": "science",
    "sklearn": "science", "PIL": "science", "matplotlib": "science",
    "docker": "worker", "flask": "web", "waitress": "web", "markdown_it": "web",
}


@dataclass(frozen=True)
class LazyCommand:
    """Where a command is defined (``module:attribute`` under ``evaluator.cli``) and its
    one-line help, shown in listings without importing the module."""

    target: str
    help: str

    def load(self) -> click.Command:
        """Import the command's module and return the command."""
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(f"evaluator.cli.{module}"), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target}: expected a click command, found {command!r}")
        return command


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use (see the module docstring)."""

    def __init__(self, name: str | None = None, *, lazy: dict[str, LazyCommand],
                 **attrs: Any) -> None:
        super().__init__(name, **attrs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name) or click.Command(name, help=self.lazy[name].help)
            rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


COMMANDS: dict[str, LazyCommand] = {
    "check": LazyCommand("runner_cmds:check_command", "Run SUBMISSION exactly as the evaluator "
                         "would, on public validation data; report."),
    "complete": LazyCommand("completion_cmds:complete", "Complete missing expression values "
                            "(median filter or SpaCKLE) and evaluate completion."),
    "datasets": LazyCommand("datasets_cmds:datasets_command", "List the 26 SpaRED datasets of "
                            "the registry, with the slides of each split."),
    "db": LazyCommand("service_cmds:db_group", "The results database (DATABASE_URL; default "
                      "SQLite under SPARED_BENCH_HOME)."),
    "evaluate": LazyCommand("runner_cmds:evaluate_command", "Evaluate SUBMISSION on the hidden "
                            "split of a release: run, validate, score, report."),
    "predictions": LazyCommand("author_cmds:predictions_command", "Download your entry's "
                               "predictions on the hidden split (SUBMISSION: id or TEAM/NAME)."),
    "queue": LazyCommand("service_cmds:queue_command", "Show the queue (messages waiting, "
                         "delayed) and the jobs by status."),
    "reevaluate": LazyCommand("service_cmds:reevaluate_command", "Queue entries on a release; "
                              "each runs its recorded image digest (never a tag)."),
    "rerun": LazyCommand("service_cmds:rerun_command", "Re-run an entry's jobs on a release "
                         "(same digest) to check that it is reproducible."),
    "results": LazyCommand("service_cmds:results_command", "Print the stored results of one "
                           "release and track (entry x dataset)."),
    "score": LazyCommand("scoring_cmds:score_cmd", "Score a predictions file against the "
                         "hidden truth of one dataset and track."),
    "serve": LazyCommand("web_cmds:serve_command", "Serve the leaderboard web app: pages, "
                         "figures, the JSON/CSV API and submissions."),
    "stats": LazyCommand("scoring_cmds:stats_cmd", "Rank entries and test their differences "
                         "from a long results table (entry, dataset, mse)."),
    "status": LazyCommand("service_cmds:status_command", "Show a submission's jobs, results and "
                          "(your own) logs; SUBMISSION is an id or TEAM/NAME."),
    "submit": LazyCommand("service_cmds:submit_command", "Submit IMAGE for evaluation: an "
                          "image on this engine, a `docker save` .tar file, or an image "
                          "pushed to the service's registry (REGISTRY/team-ID/REPO@sha256:"
                          "DIGEST)."),
    "team": LazyCommand("service_cmds:team_group", "Teams and their API tokens (maintainers)."),
    "template": LazyCommand("author_cmds:template_command", "Write a submission template to "
                            "FOLDER that builds anywhere (with the SDK beside it)."),
    "withdraw": LazyCommand("service_cmds:withdraw_command", "Withdraw ENTRY (TEAM/NAME or a "
                            "submission id) from the leaderboard and public pages."),
    "worker": LazyCommand("worker_cmds:worker_command", "Consume the job queue until SIGTERM "
                          "(finishes running jobs) or SIGINT."),
    "workers": LazyCommand("workers_cmds:workers_group", "List the workers: host, GPUs, "
                           "current jobs, heartbeat age, jobs done in the last hour."),
    "registry": LazyCommand("registry_cmds:registry_group", "The submission registry authors "
                            "push images to (only missing layers travel)."),
}
"""The root group's commands (``data`` is ``DATA_COMMANDS``)."""

DATA_COMMANDS: dict[str, LazyCommand] = {
    "import": LazyCommand("datasets_cmds:import_command", "Validate a SpaRED-processed .h5ad "
                          "and add it, unchanged, to the store."),
    "process": LazyCommand("pipeline_cmds:process_command", "Process RAW counts into a SpaRED "
                           "dataset: filters, TPM, log2, median filter, Moran's I, top genes, "
                           "ComBat, deltas, mask, SpaCKLE."),
    "publish": LazyCommand("service_cmds:publish_command", "Make a built release current and "
                           "queue every baseline on it."),
    "pull": LazyCommand("pull_cmds:pull_command", "Fetch the public training data of the "
                        "service's release, to run `check` on it."),
    "release": LazyCommand("datasets_cmds:release_command", "Build an immutable release from "
                           "processed files [default: every file in the store]."),
    "releases": LazyCommand("datasets_cmds:releases_command", "List the releases in the store."),
    "show": LazyCommand("datasets_cmds:show_command", "Show one release (id, id prefix or "
                        "label) after verifying its files."),
    "synth": LazyCommand("datasets_cmds:synth_command", "Generate SpaRED-like synthetic "
                         "processed datasets (deterministic by seed)."),
    "synth-raw": LazyCommand("pipeline_cmds:synth_raw_command", "Generate synthetic raw counts "
                             "(before filtering), the input of `data process`/`update`."),
    "update": LazyCommand("pipeline_cmds:update_command", "Re-process the raw inputs that "
                          "changed, release, publish and re-evaluate the baselines."),
    "validate": LazyCommand("datasets_cmds:validate_command", "Check processed .h5ad files "
                            "against the SpaRED dataset schema."),
}
"""The ``data`` group's commands."""


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="spared-bench")
def cli() -> None:
    """SpaRED Bench: evaluate gene-expression-from-histology models on the SpaRED datasets."""


@cli.group("data", cls=LazyGroup, lazy=DATA_COMMANDS)
def data_group() -> None:
    """Synthesize, import, validate and release datasets."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; print a ``BenchError`` as one clear message (no traceback) and exit 2."""
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        result = cli.main(args=argv, prog_name="spared-bench", standalone_mode=False)
    except BenchError as exc:
        # messages quote author text (names, archive contents): no raw controls
        click.echo(f"error: {escape_controls(str(exc), keep_newlines=True)}", err=True)
        return EXIT_USER_ERROR
    except ModuleNotFoundError as exc:
        module = (exc.name or "").split(".")[0]
        extra = EXTRA_OF_MODULE.get(module)
        if extra is None:
            raise
        click.echo(f"error: this command needs the '{extra}' extra: expected the module "
                   f"{module}, found it missing; install it with "
                   f"pip install 'spared-bench[{extra}]'", err=True)
        return EXIT_USER_ERROR
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
