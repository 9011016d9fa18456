"""Root of the ``spared-bench`` command: groups every sub-command, turns errors into messages.

Each area keeps its commands in its own module (``datasets_cmds``, ``scoring_cmds``,
``completion_cmds``, ...) as a ``COMMANDS`` list; this module adds them to the root group.
"""

from __future__ import annotations

import sys

import click

from evaluator import __version__
from evaluator.cli import (
    author_cmds,
    completion_cmds,
    datasets_cmds,
    pipeline_cmds,
    pull_cmds,
    registry_cmds,
    runner_cmds,
    scoring_cmds,
    service_cmds,
    web_cmds,
    workers_cmds,
)
from evaluator.core.errors import BenchError
from evaluator.core.text import escape_controls

EXIT_USER_ERROR = 2
# Modules of the package extras (pyproject.toml): a command that needs one names the extra.
EXTRA_OF_MODULE: dict[str, str] = {
    "torch": "science", "squidpy": "science", "scanpy": "science", "combat": "science",
    "sklearn": "science", "PIL": "science", "matplotlib": "science",
    "docker": "worker", "flask": "web", "waitress": "web", "markdown_it": "web",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="spared-bench")
def cli() -> None:
    """SpaRED Bench: evaluate gene-expression-from-histology models on the SpaRED datasets."""


for _module in (datasets_cmds, scoring_cmds, completion_cmds, runner_cmds, service_cmds,
                pipeline_cmds, web_cmds, author_cmds, registry_cmds, workers_cmds):
    for _command in _module.COMMANDS:
        cli.add_command(_command)
datasets_cmds.data_group.add_command(pull_cmds.pull_command)


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
