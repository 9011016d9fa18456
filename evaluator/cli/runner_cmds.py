"""CLI commands that run submissions: ``check`` (public validation data) and ``evaluate``.

Both go through ``evaluator.jobs`` (stage → run → validate → score), so a submission that
passes ``check`` is run by ``evaluate`` in exactly the same way, on the hidden split instead.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import click

from evaluator.contract import JobLimits
from evaluator.core.errors import BenchError
from evaluator.core.settings import Settings
from evaluator.core.text import escape_controls
from evaluator.core.vocabulary import TRACKS, Track
from evaluator.datasets.release import Release, list_releases, load_release
from evaluator.jobs import (
    LOCAL_RUNNER_WARNING,
    DockerExecutor,
    Executor,
    JobPlan,
    JobResult,
    JobsReport,
    LocalExecutor,
    Purpose,
    TaskSettings,
    plan_jobs,
    results_table,
    run_jobs,
)
from evaluator.jobs.baselines import BaselineScore, validation_baselines
from evaluator.orchestrator.client import fetch_limits
from evaluator.runners import RunLimits, docker_client
from evaluator.runners.errors import ImageMissing

LOG_TAIL_LINES = 20


class JobsFailed(click.ClickException):
    """Some jobs failed: the summary is printed as ``Error: ...`` and the exit status is 1."""

    exit_code = 1


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _tracks(value: str | None) -> list[Track] | None:
    names = _csv(value)
    if names is None:
        return None
    bad = [n for n in names if n not in TRACKS]
    if bad:
        raise BenchError(f"--tracks: expected names among {', '.join(TRACKS)}, found {bad}")
    return cast(list[Track], names)


def _gpus(value: str | None) -> list[int] | None:
    names = _csv(value)
    if not names:
        return None
    if not all(n.isdigit() for n in names):
        raise BenchError(f"--gpus: expected comma-separated device ids like 0,1, found {value!r}")
    return [int(n) for n in names]


def _release(ref: str | None, settings: Settings) -> Release:
    if ref is not None:
        return load_release(ref, settings.releases_dir)
    manifests = list_releases(settings.releases_dir)
    if not manifests:
        raise BenchError(f"no release in {settings.releases_dir}: expected at least one; build "
                         "one with `spared-bench data synth` and `spared-bench data release`")
    return load_release(manifests[-1].release_id, settings.releases_dir)


def _executor(runner: str, submission: str) -> Executor:
    if runner == "local":
        click.secho(LOCAL_RUNNER_WARNING, fg="yellow", bold=True, err=True)
        return LocalExecutor(submission)
    client = docker_client()  # raises EngineUnavailable: nothing could run
    try:
        client.images.get(submission)
    except Exception as exc:  # docker's ImageNotFound/APIError: the same for the author
        raise ImageMissing(submission) from exc
    return DockerExecutor(submission, client=client)


def _job_line(result: JobResult) -> str:
    where = f"{result.dataset}/{result.track}"
    t = result.timings
    if result.succeeded and result.score is not None:
        m = result.score.metrics
        pcc = "n/a" if m.pcc_gene is None else f"{m.pcc_gene:.4f}"
        return (f"PASS  {where}: MSE {m.mse:.4f}  PCC-Gene {pcc}  "
                f"(model {t.model_s:.1f} s, total {t.total_s:.1f} s)")
    return f"FAIL  {where}: {result.status}: {escape_controls(result.message)}"


def _echo_failure_details(result: JobResult) -> None:
    for note in result.notes:
        click.echo(f"      note: {escape_controls(note)}")
    if not result.succeeded and result.log_tail.strip():
        # "\n" only: splitlines() would also break at "\r" and hide a line rewrite
        lines = result.log_tail.rstrip().split("\n")[-LOG_TAIL_LINES:]
        click.echo(f"      --- last {len(lines)} line(s) of the submission's output ---")
        for line in lines:
            click.echo(f"      | {escape_controls(line)}")


def _run(purpose: Purpose, submission: str, runner: str, release_ref: str | None,
         datasets: str | None, tracks: str | None, time_limit_s: float | None,
         mem_limit_gb: float | None, cpus: float | None, gpus: str | None, seed: int | None,
         keep_outputs: Path | None, server: str | None = None
         ) -> tuple[Release, list[JobPlan], list[JobResult], TaskSettings]:
    settings = Settings.from_env()
    # The service's limits (fetched with --server, else this machine's SPARED_BENCH_JOB_*),
    # then what the command line changes.
    published = fetch_limits(server) if server else JobLimits.from_settings(settings)
    overrides = {"time_limit_s": time_limit_s, "mem_limit_gb": mem_limit_gb, "cpus": cpus}
    published = published.model_copy(update={k: v for k, v in overrides.items()
                                              if v is not None})
    time_limit_s = published.time_limit_s
    release = _release(release_ref, settings)
    plans = plan_jobs(release, _csv(datasets), _tracks(tracks))
    gpu_ids = _gpus(gpus)
    executor = _executor(runner, submission)
    limits = RunLimits.from_job_limits(published)
    told = published if gpu_ids or published.gpus == "none" else published.model_copy(
        update={"gpus": f"none here ({published.gpus} on the service)"})
    task_settings = TaskSettings(time_limit_s=time_limit_s, device="cuda" if gpu_ids else "cpu",
                                 seed=settings.seed if seed is None else seed, limits=told)
    # a server's text (its GPU description) reaches the terminal: controls shown, not obeyed
    click.echo(escape_controls(f"job limits{' of ' + server if server else ''}: "
                               f"{', '.join(published.lines())}"), err=True)
    label = "public validation split" if purpose == "validation" else "hidden split"
    click.echo(f"{'checking' if purpose == 'validation' else 'evaluating'} {submission} "
               f"({runner} runner) on the {label} of release {release.release_id[:12]}"
               f"{f' ({release.manifest.label})' if release.manifest.label else ''}: "
               f"{len(plans)} job(s), time limit {time_limit_s:g} s each", err=True)

    def on_start(i: int, n: int, plan: JobPlan) -> None:
        click.echo(f"[{i}/{n}] {plan.dataset}/{plan.track}: staging and running ...", err=True)

    def on_result(i: int, n: int, result: JobResult) -> None:
        status = "ok" if result.succeeded else result.status
        click.echo(f"[{i}/{n}] {result.dataset}/{result.track}: {status} in "
                   f"{result.timings.total_s:.1f} s", err=True)

    results = run_jobs(executor, release, plans, purpose=purpose, settings=task_settings,
                       limits=limits, staging_root=settings.home / "staging", gpus=gpu_ids,
                       keep_outputs=keep_outputs, on_start=on_start, on_result=on_result)
    return release, plans, results, task_settings


def _common_options(func: click.decorators.FC) -> click.decorators.FC:
    options = [
        click.option("--runner", type=click.Choice(["docker", "local"]), default="docker",
                     show_default=True,
                     help="docker: SUBMISSION is an image, run isolated. local: SUBMISSION is a "
                          "command (e.g. 'python submissions/baselines/mean/predict.py') run "
                          "as a plain process with NO isolation (development only)."),
        click.option("--release", "release_ref", default=None,
                     help="Release id, id prefix or label [default: the newest release]."),
        click.option("--datasets", default=None,
                     help="Comma-separated datasets [default: every dataset of the release]."),
        click.option("--tracks", default=None,
                     help="Comma-separated tracks among raw,spackle [default: every track]."),
        click.option("--time-limit-s", type=click.FloatRange(min=1), default=None,
                     help="Wall-clock limit of each job (in task.json too) [default: the "
                          "service's, SPARED_BENCH_JOB_TIME_LIMIT_S or 3600]."),
        click.option("--mem-limit-gb", type=click.FloatRange(min=0.1), default=None,
                     help="Memory limit of each job (docker runner) [default: the service's, "
                          "SPARED_BENCH_JOB_MEM_LIMIT_GB or 16]."),
        click.option("--cpus", type=click.FloatRange(min=0.1), default=None,
                     help="CPU limit of each job (docker runner) [default: the service's, "
                          "SPARED_BENCH_JOB_CPUS or 2]."),
        click.option("--gpus", default=None,
                     help="GPU device ids for the jobs, e.g. 0 or 0,1 (task.json device=cuda)."),
        click.option("--seed", type=int, default=None,
                     help="Seed in task.json [default: SPARED_BENCH_SEED or 0]."),
        click.option("--keep-outputs", type=click.Path(file_okay=False, path_type=Path),
                     default=None, help="Copy each job's predictions.npy, model.json and "
                                        "log.txt (stdout + stderr, passing jobs too) here "
                                        "(<dir>/<dataset>/<track>/)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _baseline_text(scores: list[BaselineScore]) -> str:
    def number(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    parts = [f"{s.name} {number(s.mse)} / {number(s.pcc_gene)}" if s.status == "succeeded"
             else f"{s.name} {s.status}" for s in scores]
    return f"      baselines (MSE / PCC-Gene): {', '.join(parts)}" if parts else ""


def _identical_tracks(results: list[JobResult]) -> list[str]:
    """Datasets whose tracks got byte-identical predictions (a spackle-track mistake)."""
    hashes: dict[str, dict[str, str]] = {}
    for result in results:
        if result.succeeded and result.score is not None and result.score.predictions_sha256:
            hashes.setdefault(result.dataset, {})[result.track] = \
                result.score.predictions_sha256
    return [dataset for dataset, by_track in hashes.items()
            if len(by_track) > 1 and len(set(by_track.values())) == 1]


@click.command("check")
@click.argument("submission")
@_common_options
@click.option("--server", envvar="SPARED_BENCH_SERVER", default=None,
              help="Run under the job limits this service publishes (GET /api/limits) "
                   "[env SPARED_BENCH_SERVER].")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Print the mean and ridge baselines' numbers on the same validation data "
                   "beside yours (computed once per release, dataset and track with the local "
                   "runner, then read from the cache under the staging folder).")
def check_command(submission: str, runner: str, release_ref: str | None, datasets: str | None,
                  tracks: str | None, time_limit_s: float | None, mem_limit_gb: float | None,
                  cpus: float | None, gpus: str | None, seed: int | None,
                  keep_outputs: Path | None, server: str | None, baselines: bool) -> None:
    """Run SUBMISSION exactly as the evaluator would, on public validation data; report.

    Each (dataset, track) becomes a task built like an evaluation task from the release's
    public training file: the val slides are held out where the hidden split is test, else the
    last training slide, else (one slide) a random 30% of its spots. The output is validated
    and scored as in an evaluation; the metrics are your own, on validation data, printed
    beside the mean and ridge baselines' on the same validation spots. A dataset whose two
    tracks got identical predictions is warned about (the spackle track's `X` has no gaps:
    a model that treats both tracks alike probably fits the raw track's zeros or ignores
    the mask). Exit 0 when every job passes, 1 otherwise.
    """
    release, _plans, results, task_settings = _run(
        "validation", submission, runner, release_ref, datasets, tracks, time_limit_s,
        mem_limit_gb, cpus, gpus, seed, keep_outputs, server)
    settings = Settings.from_env()
    baseline_scores: dict[tuple[str, str], list[BaselineScore]] = {}
    if baselines and any(r.succeeded for r in results):
        click.echo("baselines: read from the cache under the staging folder, or computed once "
                   "on the same validation data (local runner) ...", err=True)
        limits = RunLimits(timeout_s=task_settings.time_limit_s)
        for result in results:
            if result.succeeded:
                baseline_scores[(result.dataset, result.track)] = validation_baselines(
                    release, result.dataset, result.track, settings=task_settings,
                    staging_root=settings.home / "staging", limits=limits)
    click.echo("")
    for result in results:
        click.echo(_job_line(result))
        if result.holdout:
            click.echo(f"      held out: {escape_controls(result.holdout)}")
        text = _baseline_text(baseline_scores.get((result.dataset, result.track), []))
        if text:
            click.echo(text)
        _echo_failure_details(result)
    identical = _identical_tracks(results)
    for dataset in identical:
        click.secho(f"WARNING  {dataset}: the raw and spackle tracks got identical "
                    "predictions; on spackle every entry of X holds a value (no gaps to "
                    "mask) while on raw X is 0 where nothing was measured: fit raw on "
                    "mask-True entries only (sdk.training_weights(train, task.track))",
                    fg="yellow")
    if keep_outputs is not None:
        click.echo(f"kept each job's predictions.npy, model.json and log.txt (stdout + "
                   f"stderr) in {keep_outputs}/<dataset>/<track>/")
    passed = sum(r.succeeded for r in results)
    click.echo("")
    if passed == len(results):
        click.secho(f"check passed: {passed}/{len(results)} job(s) ran, wrote valid "
                    "predictions and were scored (metrics on validation data, not the "
                    "hidden split)"
                    f"{f'; {len(identical)} warning(s)' if identical else ''}", fg="green")
        return
    raise JobsFailed(f"check FAILED: {len(results) - passed} of {len(results)} job(s) failed; "
                     "see the messages above")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60] or "submission"


@click.command("evaluate")
@click.argument("submission")
@_common_options
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Report JSON path; a CSV is written beside it "
                                 "[default: <SPARED_BENCH_HOME>/reports/<submission>-<release>-"
                                 "<time>.json].")
def evaluate_command(submission: str, runner: str, release_ref: str | None,
                     datasets: str | None, tracks: str | None, time_limit_s: float | None,
                     mem_limit_gb: float | None, cpus: float | None, gpus: str | None,
                     seed: int | None, keep_outputs: Path | None,
                     report_path: Path | None) -> None:
    """Evaluate SUBMISSION on the hidden split of a release: run, validate, score, report.

    Prints a table of the SpaRED metrics per (dataset, track) and writes a JSON and a CSV
    report (atomically). Exit 0 when every job succeeded, 1 otherwise.
    """
    release, _plans, results, settings = _run(
        "evaluation", submission, runner, release_ref, datasets, tracks, time_limit_s,
        mem_limit_gb, cpus, gpus, seed, keep_outputs)
    report = JobsReport(submission=submission, runner=runner, purpose="evaluation",
                        release_id=release.release_id, time_limit_s=settings.time_limit_s,
                        results=results)
    if report_path is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        report_path = (Settings.from_env().home / "reports"
                       / f"{_slug(submission)}-{release.release_id[:12]}-{stamp}.json")
    json_path, csv_path = report.write(report_path)
    click.echo("")
    click.echo(results_table(results))
    failed = [r for r in results if not r.succeeded]
    for result in failed:
        click.echo("")
        click.echo(_job_line(result))
        _echo_failure_details(result)
    click.echo("")
    summary = (f"{report.n_succeeded}/{len(results)} job(s) succeeded; report: {json_path} "
               f"and {csv_path}")
    if failed:
        raise JobsFailed(summary)
    click.echo(summary)


COMMANDS: list[click.Command] = [check_command, evaluate_command]
"""This module's commands (``evaluator.cli.app`` registers them)."""

