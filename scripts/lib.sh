# Shared helpers for the project's scripts (sourced, not run).
# A script that tags its messages sets LOG_TAG before sourcing this file (e.g. ensure_docker).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
LOG_TAG="${LOG_TAG:-spared-bench}"
LIB_T0=$SECONDS
step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
# say: a progress line with the seconds since the script started.
say() { printf '[%s %4ds] %s\n' "$LOG_TAG" "$((SECONDS - LIB_T0))" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$LOG_TAG" "$*" >&2; exit 1; }
# sha: the sha256 of stdin; image_hash IMAGE: the recipe hash label of a local image (HASH_LABEL).
sha() { sha256sum | cut -c1-64; }
image_hash() { docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$1" 2>/dev/null || true; }
