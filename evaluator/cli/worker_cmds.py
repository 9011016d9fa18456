"""CLI command of the job workers: ``spared-bench worker`` (needs the worker extra, docker).

Its own module so that the service's other commands (``service_cmds``) load no docker code.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from evaluator.contract import JobLimits
from evaluator.core.settings import Settings
from evaluator.core.text import EscapingFormatter
from evaluator.orchestrator.blobcache import BlobCache
from evaluator.orchestrator.worker import Worker, WorkerOptions
from evaluator.runners import RunLimits


def _gpus(value: str | None) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        gpus = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError as error:
        raise click.BadParameter(f"expected GPU ids like 0,1, found {value!r}") from error
    if len(set(gpus)) != len(gpus) or any(g < 0 for g in gpus):
        raise click.BadParameter(f"expected distinct non-negative GPU ids, found {value!r}")
    return gpus



@click.command("worker")
@click.option("--gpus", default=None,
              help="GPU ids this worker owns, e.g. 0,1: one job per GPU at a time "
                   "[default: none, one CPU-only job at a time].")
@click.option("--name", envvar="SPARED_BENCH_WORKER_NAME", default=None,
              help="Unique worker name [env SPARED_BENCH_WORKER_NAME; default: the token's "
                   "worker name with --server, else the host name].")
@click.option("--lease-s", type=click.FloatRange(1), default=60.0, show_default=True,
              help="A running job whose worker is silent this long is run again.")
@click.option("--heartbeat-s", type=click.FloatRange(0.1), default=5.0, show_default=True,
              help="How often a running job's lease is renewed.")
@click.option("--reap-interval-s", type=click.FloatRange(0.5), default=10.0, show_default=True,
              help="How often this worker looks for jobs of dead workers.")
@click.option("--retry-delay-s", type=click.FloatRange(0), default=5.0, show_default=True,
              help="Wait before an infrastructure failure is retried.")
@click.option("--timeout-s", type=click.FloatRange(1), default=None,
              help="Wall-clock limit of each job [default: SPARED_BENCH_JOB_TIME_LIMIT_S, the "
                   "limit the service publishes; set it there, not here, for a service].")
@click.option("--mem-limit-gb", type=click.FloatRange(0.1), default=None,
              help="[default: SPARED_BENCH_JOB_MEM_LIMIT_GB]")
@click.option("--cpus", type=click.FloatRange(0.1), default=None,
              help="[default: SPARED_BENCH_JOB_CPUS]")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING"]), default="INFO",
              show_default=True)
@click.option("--server", envvar="SPARED_BENCH_SERVER", default=None,
              help="Fetch each job's release files from this service by content address into "
                   "the worker's cache (SPARED_BENCH_WORKER_CACHE_GB) instead of reading "
                   "SPARED_BENCH_HOME/releases, and registry pull tokens from it "
                   "[env SPARED_BENCH_SERVER].")
@click.option("--token", envvar="SPARED_BENCH_WORKER_TOKEN", default=None,
              help="This worker's token, with --server (`spared-bench workers add NAME`) "
                   "[env SPARED_BENCH_WORKER_TOKEN].")
def worker_command(gpus: str | None, name: str | None, lease_s: float, heartbeat_s: float,
                   reap_interval_s: float, retry_delay_s: float, timeout_s: float | None,
                   mem_limit_gb: float | None, cpus: float | None, log_level: str,
                   server: str | None, token: str | None) -> None:
    """Consume the job queue until SIGTERM (finishes running jobs) or SIGINT."""
    handler = logging.StreamHandler(sys.stderr)
    # job messages and names are author text: their controls must not reach the terminal
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, log_level), handlers=[handler])
    if heartbeat_s * 2 > lease_s:
        raise click.BadParameter(f"expected --lease-s at least twice --heartbeat-s, found "
                                 f"{lease_s:g} and {heartbeat_s:g}")
    settings = Settings.from_env()
    limits = RunLimits.from_job_limits(JobLimits.from_settings(settings))
    overrides = {"timeout_s": timeout_s, "mem_limit_gb": mem_limit_gb, "cpus": cpus}
    limits = limits.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    options: dict[str, Any] = {
        "gpus": _gpus(gpus), "lease_s": lease_s, "heartbeat_s": heartbeat_s,
        "reap_interval_s": reap_interval_s, "retry_delay_s": retry_delay_s, "limits": limits}
    blobs = None
    if server:
        if not token:
            raise click.BadParameter("expected a worker token with --server (--token or "
                                     "SPARED_BENCH_WORKER_TOKEN), found none")
        blobs = BlobCache.from_settings(settings, server, token)
        # The service lets a token read what the jobs of its own worker name need.
        known_as = blobs.worker_name()
        if name and name != known_as:
            raise click.BadParameter(f"--name: expected the token's worker name {known_as!r} "
                                     f"(or no --name), found {name!r}")
        name = known_as
    if name:
        options["name"] = name
    Worker(settings, WorkerOptions(**options), blobs=blobs).run()


COMMANDS: list[click.Command] = [worker_command]
"""This module's commands (``evaluator.cli.app`` registers them)."""
