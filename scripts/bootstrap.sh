#!/usr/bin/env bash
# Create .venv and install the project with its dependencies; a no-op when nothing changed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || die "expected a Python 3.11 interpreter as '$PYTHON', found none"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
  || die "expected Python 3.11, found $("$PYTHON" --version 2>&1)"

if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtual environment in .venv"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  note "python packages up to date ($(basename "$stamp"))"
  exit 0
fi
step "installing python packages into .venv (first run takes a few minutes)"
"$VENV/bin/pip" install --quiet --upgrade pip
# torch first, pinned: the local CPU wheel, so no resolver pulls a CUDA build.
"$VENV/bin/pip" install --quiet "torch==2.13.0"
"$VENV/bin/pip" install --quiet -e ".[all,dev]"
rm -f "$VENV"/.installed-*
touch "$stamp"
note "installed: $("$VENV/bin/spared-bench" --version)"
