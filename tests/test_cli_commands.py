"""The CLI's command table (``evaluator.cli.app``): commands load on first use, ``--help``
lists them all from the table without importing any command module, and the table agrees
with the commands themselves."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from evaluator.cli.app import COMMANDS, DATA_COMMANDS, LazyCommand, cli

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = [(name, entry) for name, entry in COMMANDS.items()] + [
    (f"data {name}", entry) for name, entry in DATA_COMMANDS.items()]


@pytest.mark.parametrize(("name", "entry"), ENTRIES, ids=[name for name, _ in ENTRIES])
def test_each_entry_is_its_command_with_its_help(name: str, entry: LazyCommand) -> None:
    command = entry.load()
    assert command.name == name.split()[-1]
    listed = click.Command(command.name, help=entry.help)
    for limit in (40, 70, 200):
        assert listed.get_short_help_str(limit) == command.get_short_help_str(limit)


def test_the_table_names_every_command_of_every_module() -> None:
    modules = sorted(p.stem for p in (ROOT / "evaluator" / "cli").glob("*_cmds.py"))
    in_table: dict[str, set[str]] = {}
    for name, entry in [*COMMANDS.items(), *DATA_COMMANDS.items()]:
        in_table.setdefault(entry.target.partition(":")[0], set()).add(name)
    assert sorted(in_table) == modules
    for module in modules:
        declared = importlib.import_module(f"evaluator.cli.{module}").COMMANDS
        assert {c.name for c in declared} == in_table[module], module


def _help_in_fresh_interpreter(*args: str) -> tuple[str, list[str]]:
    script = (
        "import sys, contextlib, io\n"
        "from evaluator.cli.app import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    code = main({list(args)!r})\n"
        "heavy = ['torch', 'scanpy', 'squidpy', 'sqlalchemy', 'docker', 'flask', 'anndata',\n"
        "         'pandas', 'requests', 'evaluator.datasets', 'evaluator.store']\n"
        "print(out.getvalue())\n"
        "print('LOADED', [m for m in heavy if m in sys.modules])\n"
        "sys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    text, _, loaded = result.stdout.rpartition("LOADED ")
    return text, ast.literal_eval(loaded)


def test_help_lists_every_command_and_imports_no_command_module() -> None:
    text, loaded = _help_in_fresh_interpreter("--help")
    assert loaded == []
    listed = [line.split()[0] for line in text.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == sorted([*COMMANDS, "data"])
    assert "Submit IMAGE for evaluation: an image on this" in text


def test_data_help_lists_the_data_commands_without_importing_them() -> None:
    text, loaded = _help_in_fresh_interpreter("data", "--help")
    assert loaded == []
    listed = [line.split()[0] for line in text.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == sorted(DATA_COMMANDS)


def test_a_command_is_loaded_when_it_runs() -> None:
    ctx = click.Context(cli)
    assert isinstance(cli.get_command(ctx, "datasets"), click.Command)
    assert cli.get_command(ctx, "no-such-command") is None


def _run_without(blocked: set[str], commands: list[list[str]]) -> list[tuple[int, str]]:
    """Run ``spared-bench COMMAND --help`` for each command in one fresh interpreter where the
    ``blocked`` top-level modules are missing; return (exit status, stdout + stderr) each."""
    script = (
        "import contextlib, importlib.abc, io, json, sys\n"
        "class Missing(importlib.abc.MetaPathFinder):  # as if the extra were not installed\n"
        "    def find_spec(self, name, path, target=None):\n"
        f"        if name.split('.')[0] in {sorted(blocked)!r}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Missing())\n"
        "from evaluator.cli.app import main\n"
        "results = []\n"
        f"for command in {commands!r}:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):\n"
        "        code = main([*command, '--help'])\n"
        "    results.append((code, out.getvalue()))\n"
        "print(json.dumps(results))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=True)
    return [(code, text) for code, text in json.loads(done.stdout)]


EXTRAS = {"torch", "squidpy", "scanpy", "combat", "sklearn", "PIL", "matplotlib", "docker",
          "flask", "waitress", "markdown_it"}
CORE_COMMANDS = [["status"], ["submit"], ["withdraw"], ["predictions"], ["template"],
                 ["datasets"], ["score"], ["stats"], ["results"], ["team"], ["db"], ["queue"],
                 ["reevaluate"], ["rerun"], ["data", "pull"], ["data", "publish"],
                 ["data", "releases"], ["data", "synth"], ["data", "release"]]


def test_a_core_install_runs_the_commands_that_need_no_extra() -> None:
    """Without any extra, these commands load (their help prints): the CLI of an author's or
    an operator's core install."""
    for command, (code, text) in zip(CORE_COMMANDS, _run_without(EXTRAS, CORE_COMMANDS),
                                     strict=True):
        assert code == 0, (command, text[-2000:])
        assert "Usage: spared-bench" in text, command


def test_a_command_that_needs_an_extra_names_it() -> None:
    cases = {"worker": ("worker", "docker"), "serve": ("web", "flask"),
             "complete": ("science", "torch")}
    for name, (extra, module) in cases.items():
        [(code, text)] = _run_without({module}, [[name]])
        assert code == 2, (name, text[-2000:])
        assert f"this command needs the '{extra}' extra" in text
        assert "Traceback" not in text
