#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: set-up (venv, packages, Docker engine, images)
# is done here, idempotently. Extra arguments go to pytest (e.g. -k release, -x).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
start=$(date +%s)

bash scripts/bootstrap.sh

step "lint (ruff)"
"$VENV/bin/ruff" check .

step "types (mypy, settings in pyproject.toml)"
"$VENV/bin/mypy"

if [ -d tests/runners ]; then
  step "Docker engine and base images"
  bash scripts/ensure_docker.sh
  bash scripts/build_base_image.sh
  bash scripts/build_baselines.sh
fi

step "Postgres and Redis on loopback (store and queue tests)"; bash scripts/ensure_postgres.sh >/dev/null && bash scripts/ensure_redis.sh >/dev/null

step "Debian's docker-registry (the submission registry's tests)"; bash scripts/ensure_registry.sh >/dev/null

step "SpaRED's library in its own venv (the reference of tests/datasets/spared_reference)"
bash scripts/ensure_spared_reference.sh >/dev/null

step "Chromium and wrk (browser tests, leaderboard benchmark)"; bash scripts/ensure_chromium.sh

step "tests (pytest)"
"$VENV/bin/pytest" -p no:cacheprovider "$@"
note "all done in $(( $(date +%s) - start ))s"
