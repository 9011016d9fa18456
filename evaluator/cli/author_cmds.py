"""Commands for model authors away from the service: ``template`` and ``predictions``."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from evaluator.core.errors import BenchError
from evaluator.core.fsio import atomic_path
from evaluator.orchestrator.client import download_predictions

SUBMISSIONS_DIR = Path(__file__).resolve().parents[2] / "submissions"
"""This source tree's submissions folder: the template and the SDK."""
TEMPLATE_FILES = {"Dockerfile": "template/Dockerfile", "README.md": "template/README.md",
                  "predict.py": "template/predict.py", "spared_sdk.py": "sdk/spared_sdk.py"}


def write_template(target: Path, source: Path = SUBMISSIONS_DIR) -> list[Path]:
    """Write a self-contained submission folder: Dockerfile, README, predict.py and the SDK.

    Refuses a folder that already holds any of the files (nothing is overwritten); the folder
    appears whole or not at all.
    """
    missing = [rel for rel in TEMPLATE_FILES.values() if not (source / rel).is_file()]
    if missing:
        raise BenchError(f"template: expected the template and SDK under {source}, found "
                         f"{', '.join(missing)} missing (an installation without "
                         "submissions/; copy the folder from the repository)")
    taken = [name for name in TEMPLATE_FILES if (target / name).exists()]
    if taken:
        raise BenchError(f"{target}: expected a new or empty folder, found {', '.join(taken)} "
                         "there already (nothing was overwritten)")
    if target.exists() and not target.is_dir():
        raise BenchError(f"{target}: expected a folder, found a file")
    if target.exists():
        for name, rel in TEMPLATE_FILES.items():
            with atomic_path(target / name) as tmp:
                shutil.copyfile(source / rel, tmp)
    else:
        with atomic_path(target, directory=True) as tmp:
            for name, rel in TEMPLATE_FILES.items():
                shutil.copyfile(source / rel, tmp / name)
            tmp.chmod(0o755)
    return [target / name for name in TEMPLATE_FILES]


@click.command("template")
@click.argument("folder", type=click.Path(path_type=Path))
def template_command(folder: Path) -> None:
    """Write a submission template to FOLDER that builds anywhere (with the SDK beside it).

    FOLDER gets Dockerfile, README.md, predict.py and spared_sdk.py; `docker build
    --network none -t my-model:1 FOLDER` builds it FROM the base image, outside this
    repository too.
    """
    files = write_template(folder)
    click.echo(f"wrote {', '.join(p.name for p in files)} to {folder}")
    click.echo(f"next: edit {folder / 'predict.py'}; spared-bench check --runner local "
               f"\"python {folder / 'predict.py'}\"; docker build --network none -t "
               f"my-model:1 {folder}; spared-bench check my-model:1")


@click.command("predictions")
@click.argument("submission")
@click.option("--server", envvar="SPARED_BENCH_SERVER", required=True,
              help="Leaderboard URL [env SPARED_BENCH_SERVER].")
@click.option("--token", envvar="SPARED_BENCH_TOKEN", required=True,
              help="Your team's API token [env SPARED_BENCH_TOKEN] (or an admin's).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder to write <release>/<dataset>/<track>.npy into.")
def predictions_command(submission: str, server: str, token: str, out_dir: Path) -> None:
    """Download your entry's predictions on the hidden split (SUBMISSION: id or TEAM/NAME).

    One float32 .npy per scored job (rows in test.h5ad order, columns in task.genes order),
    each checked against the hash its result records. Only the owning team and admins may.
    """
    written = download_predictions(server, token, submission, out_dir,
                                   say=lambda line: click.echo(line, err=True))
    click.echo(f"{len(written)} predictions file(s) in {out_dir}")


COMMANDS: list[click.Command] = [template_command, predictions_command]
"""This module\'s commands (``evaluator.cli.app`` registers them)."""
