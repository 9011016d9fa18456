"""`spared-bench serve` as a process for tests: started on a free port, stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "spared-bench")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served_app(env: Mapping[str, str], log_dir: Path, *args: str) -> Iterator[str]:
    """Run `spared-bench serve` with ``env`` until ``/healthz`` answers; yield its URL.

    Its output goes to ``log_dir/serve-<port>.log`` (quoted when it does not start).
    """
    port = free_port()
    log_path = log_dir / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([CLI, "serve", "--port", str(port), *args], env=dict(env),
                                   stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("spared-bench serve did not answer: "
                                     + log_path.read_text()[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@contextlib.contextmanager
def registry_service(env: Any, **extra: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """The web app and its registry (`spared-bench registry serve`, Debian's docker-registry),
    each on a free port, for a bench ``env`` (``.env``, ``.home``); yields (web URL, registry
    host, the environment a service-side process runs with)."""
    port = free_port()
    host = f"127.0.0.1:{port}"
    service_env = {**env.env, "SPARED_BENCH_REGISTRY_URL": f"http://{host}", **extra}
    with served_app(service_env, env.home) as url:
        log = open(env.home / "registry.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(
            [CLI, "registry", "serve", "--listen", host, "--realm",
             f"{url}/api/registry/token"], env=service_env, stdout=log,
            stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(requests.ConnectionError):
                    if requests.get(f"http://{host}/v2/", timeout=2).status_code == 401:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("registry did not answer: " +
                                         (env.home / "registry.log").read_text()[-2000:])
                time.sleep(0.2)
            yield url, host, service_env
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
            log.close()
