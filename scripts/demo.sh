#!/usr/bin/env bash
# The demo on a fresh machine: set-up, synthetic SpaRED-like data, a release, a summary.
# Data goes to $SPARED_BENCH_HOME (default: var/demo in the repository).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
start=$(date +%s)
export SPARED_BENCH_HOME="${SPARED_BENCH_HOME:-$ROOT/var/demo}"

bash scripts/bootstrap.sh
bench="$VENV/bin/spared-bench"

step "the 26 SpaRED datasets"
"$bench" datasets

step "synthesizing the 'demo' datasets into $SPARED_BENCH_HOME/processed"
"$bench" data synth --size demo

step "building the release (public inputs, hidden truth, manifest)"
"$bench" data release --label demo

step "releases in the store"
"$bench" data releases
note "demo finished in $(( $(date +%s) - start ))s; data in $SPARED_BENCH_HOME"
