#!/usr/bin/env bash
# The demo on a fresh machine, end to end on the embedded default (SQLite store and queue, the
# local Docker engine): set-up, synthetic SpaRED-like data, a release (both tracks, SpaCKLE
# trained on CPU), the four baselines evaluated in isolated containers by a worker, and the
# leaderboard served at http://127.0.0.1:${PORT:-8000}/ until Ctrl-C.
# Data goes to $SPARED_BENCH_HOME (default: var/demo in the repository).
# DEMO_SERVE=0 stops after the evaluation instead of serving.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
start=$(date +%s)
export SPARED_BENCH_HOME="${SPARED_BENCH_HOME:-$ROOT/var/demo}"
PORT="${PORT:-8000}"
# The demo's job limits, in the one place the worker, the web app (guide, /api/limits, entry
# pages) and `check` all read them from.
export SPARED_BENCH_JOB_TIME_LIMIT_S="${SPARED_BENCH_JOB_TIME_LIMIT_S:-${JOB_TIMEOUT_S:-40}}"
export SPARED_BENCH_JOB_MEM_LIMIT_GB="${SPARED_BENCH_JOB_MEM_LIMIT_GB:-4}"
export SPARED_BENCH_JOB_CPUS="${SPARED_BENCH_JOB_CPUS:-2}"

bash scripts/bootstrap.sh
bench="$VENV/bin/spared-bench"

step "Docker engine, base images and the baseline images (first run: several minutes)"
bash scripts/ensure_docker.sh
bash scripts/build_base_image.sh
bash scripts/build_baselines.sh

step "the 26 SpaRED datasets"
"$bench" datasets

step "synthesizing the 'demo' datasets into $SPARED_BENCH_HOME/processed"
"$bench" data synth --size demo

step "building the release: public inputs, hidden truth, SpaCKLE-completed track, manifest"
"$bench" data release --label demo

step "publishing it as the current release"
"$bench" data publish demo

step "starting a worker (log: $SPARED_BENCH_HOME/worker.log)"
"$bench" worker --name demo-worker >"$SPARED_BENCH_HOME/worker.log" 2>&1 &
worker_pid=$!
trap 'kill -TERM "$worker_pid" 2>/dev/null || true; wait "$worker_pid" 2>/dev/null || true' EXIT

step "submitting the baselines (mean, knn, ridge, cnn-delta) and waiting for their jobs"
for name in mean knn ridge cnn-delta; do
  if "$bench" status "baselines/$name" --no-logs >/dev/null 2>&1; then
    note "$name is already submitted"
    continue
  fi
  "$bench" submit "spared-bench/baseline-$name:1" --name "$name" --team baselines --baseline \
    --description "SpaRED Bench baseline: $name" --wait 1800
done
"$bench" queue

step "results of the current release (raw track)"
"$bench" results --track raw
note "evaluation finished $(( $(date +%s) - start ))s after the start"

if [ "${DEMO_SERVE:-1}" = "0" ]; then
  exit 0
fi
step "serving the leaderboard at http://127.0.0.1:$PORT/ (Ctrl-C to stop)"
"$bench" serve --port "$PORT"
