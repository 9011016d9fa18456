"""The leaderboard under load: 100 entries x 26 datasets x 2 tracks in the store (SQLite),
served by waitress (`spared-bench serve`, 2 processes x 8 threads), hit by wrk with 32 concurrent
connections.

Figures: median and p99 latency and requests/s of the cached leaderboard page and of the cached
JSON API, next to the health endpoint (one tiny query, no view: the floor of a request through
the app) measured the same way; and the time to recompute ranks and statistics for a filter not
seen before, in process (``Board.leaderboard`` with the release's rows cached, as a warm server
has them) next to ``compute_statistics`` alone on the same subset, and over HTTP (first request
of each new filter). Targets: p99 < 100 ms for cached pages; a new filter < 300 ms.
Needs wrk (``scripts/ensure_chromium.sh`` installs it with Chromium).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from tests.benchmarks.harness import BenchRow

REPO = Path(__file__).resolve().parents[2]
CONCURRENCY = 32
FILTERS = ("organism=human", "organism=mouse", "genes=32", "genes=128",
           "generalization=intra", "generalization=inter", "organism=human&genes=128",
           "organism=mouse&generalization=intra", "organism=human&generalization=inter",
           "tissue=brain", "organism=mouse&genes=128", "organism=human&generalization=intra")


def _seed(home: Path, n_entries: int) -> tuple[str, float]:
    from evaluator.datasets import dataset_names
    from evaluator.store import open_store
    from tests.leaderboard.seed import EntrySpec, seed_store

    url = f"sqlite:///{home / 'bench.db'}"
    entries = tuple(
        EntrySpec("baselines" if i < 10 else f"team-{i // 4:02d}", f"model-{i:03d}",
                  0.3 + 1.2 * ((i * 37) % n_entries) / n_entries, baseline=i < 10,
                  parameters=10 ** (3 + i % 7))
        for i in range(n_entries))
    start = time.perf_counter()
    seed_store(open_store(url), entries, datasets=tuple(sorted(dataset_names())),
               old_release_id=None)
    return url, time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(home: Path, url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "SPARED_BENCH_HOME": str(home),
           "QUEUE_URL": f"sqlite:///{home / 'queue.db'}", "SPARED_LEADERBOARD_READ_RATE": "0",
           "OMP_NUM_THREADS": "1"}
    log = open(home / "serve.log", "wb")  # noqa: SIM115 (the process owns it)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "spared-bench"), "serve", "--port", str(port),
         "--workers", "2", "--threads", "8"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/healthz", timeout=2).status_code == 200:
                return process, base
        except requests.ConnectionError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("spared-bench serve did not start: "
                       + (home / "serve.log").read_text()[-2000:])


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk(url: str, duration_s: int) -> dict[str, float]:
    """Run wrk; return p50_ms, p99_ms, rps and non-2xx count."""
    done = subprocess.run(["wrk", "-t2", f"-c{CONCURRENCY}", f"-d{duration_s}s", "--latency",
                           "--timeout", "10s", url], capture_output=True, text=True,
                          check=True, timeout=duration_s + 60)
    text = done.stdout

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if match is None:
            raise RuntimeError(f"wrk output without {percent}%: {text}")
        return float(match.group(1)) * _UNITS[match.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return {"p50_ms": latency("50"), "p99_ms": latency("99"),
            "rps": float(rps.group(1)) if rps else 0.0,
            "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0}


def _in_process_filters(url: str, home: Path) -> tuple[list[float], list[float]]:
    """Board.leaderboard for each new filter (rows cached), and compute_statistics alone;
    best of 3 per filter."""
    from sqlmodel import Session

    from evaluator.core.settings import Settings
    from evaluator.scoring import compute_statistics
    from leaderboard import LeaderboardConfig, create_app
    from leaderboard.data import resolve_release, store_version
    from leaderboard.filters import parse_filter

    app = create_app(Settings(home=home), database_url=url,
                     config=LeaderboardConfig(read_rate_per_s=0))
    app_state = app.extensions["spared_bench"]
    board = app_state.board
    full: list[float] = []
    floor: list[float] = []
    with Session(app_state.reader) as session:
        version = store_version(session)
        release = resolve_release(session, None)
        board.leaderboard(session, version, release, "raw", parse_filter({}))  # rows, imports
        for query in FILTERS:
            filt = parse_filter(dict(pair.split("=") for pair in query.split("&")))
            datasets = set(filt.select(release.datasets("raw")))
            meta = board.entries(session, version)
            table = [{"entry": meta[r["submission_id"]].label, "dataset": r["dataset"],
                      "mse": r["mse"], "pcc_gene": r["pcc_gene"]}
                     for r in board.rows(session, version, release, "raw")
                     if r["dataset"] in datasets]
            # Best of 3 (2 shared cores): each time a store version never seen, so the
            # statistics and the view are computed again while the rows stay cached.
            best_full = best_floor = float("inf")
            for attempt in range(3):
                fresh = (*version, "bench", query, attempt)
                app_state.cache.put(("rows", fresh, release.release_id, "raw"),
                                    board.rows(session, version, release, "raw"))
                app_state.cache.put(("entries", fresh), meta)
                start = time.perf_counter()
                board.leaderboard(session, fresh, release, "raw", filt)
                best_full = min(best_full, (time.perf_counter() - start) * 1e3)
                start = time.perf_counter()
                compute_statistics(table, datasets=sorted(datasets))
                best_floor = min(best_floor, (time.perf_counter() - start) * 1e3)
            full.append(best_full)
            floor.append(best_floor)
    return full, floor


def run(quick: bool) -> list[BenchRow]:
    """Seed, serve, load, measure (see module docstring)."""
    if shutil.which("wrk") is None:
        subprocess.run(["bash", str(REPO / "scripts" / "ensure_chromium.sh")], check=True)
    n_entries = 30 if quick else 100
    duration_s = 4 if quick else 10
    home = Path(tempfile.mkdtemp(prefix="bench-leaderboard-"))
    rows: list[BenchRow] = []
    try:
        url, seed_s = _seed(home, n_entries)
        size = f"{n_entries} entries x 26 datasets x 2 tracks"
        rows.append(BenchRow("leaderboard", f"seed store ({size})", seed_s, "s",
                             note="create/claim/complete jobs with real scores"))
        process, base = _serve(home, url)
        try:
            paths = {"leaderboard page /": "/", "JSON API /api/leaderboard": "/api/leaderboard",
                     "significance page": "/significance?track=spackle"}
            for path in [*paths.values(), "/healthz"]:
                for _ in range(6):  # both workers, every thread's first view
                    requests.get(base + path, timeout=60).raise_for_status()
            health = _wrk(base + "/healthz", duration_s)
            load = f"host load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
            for case, path in paths.items():
                figures = _wrk(base + path, duration_s)
                if figures["non_2xx"]:
                    raise RuntimeError(f"{case}: {figures['non_2xx']:.0f} non-2xx answers")
                verdict = "meets" if figures["p99_ms"] < 100 else "MISSES"
                rows += [
                    BenchRow("leaderboard", f"{case} cached, median", figures["p50_ms"], "ms",
                             health["p50_ms"], "/healthz median"),
                    BenchRow("leaderboard", f"{case} cached, p99", figures["p99_ms"], "ms",
                             health["p99_ms"], "/healthz p99",
                             note=f"{verdict} target p99 < 100 ms"),
                    BenchRow("leaderboard", f"{case} cached, requests/s", figures["rps"],
                             "req/s", health["rps"], "/healthz req/s",
                             note=f"{CONCURRENCY} clients, wrk {duration_s} s, {load}"),
                ]
            http_new: list[float] = []
            for query in FILTERS:
                start = time.perf_counter()
                requests.get(f"{base}/api/leaderboard?track=spackle&{query}",
                             timeout=60).raise_for_status()
                http_new.append((time.perf_counter() - start) * 1e3)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        full, floor = _in_process_filters(url, home)
        worst = max(full)
        rows += [
            BenchRow("leaderboard", "new filter, in process, median", statistics.median(full),
                     "ms", statistics.median(floor), "compute_statistics alone"),
            BenchRow("leaderboard", "new filter, in process, worst", worst, "ms", max(floor),
                     "compute_statistics alone",
                     note=f"{'meets' if worst < 300 else 'MISSES'} target < 300 ms"),
            BenchRow("leaderboard", "new filter over HTTP (uncached), median",
                     statistics.median(http_new), "ms", statistics.median(full),
                     "in process median"),
            BenchRow("leaderboard", "new filter over HTTP (uncached), worst", max(http_new), "ms",
                     worst, "in process worst",
                     note=f"{'meets' if max(http_new) < 300 else 'MISSES'} target < 300 ms"),
        ]
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return rows
