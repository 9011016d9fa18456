#!/usr/bin/env bash
# Install Debian's headless-capable Chromium (for the browser tests, driven by Playwright's Python
# package with executable_path=/usr/bin/chromium) and wrk (the leaderboard load benchmark).
# Idempotent: does nothing when both are there. Playwright's own browser download is never used.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
step "installing ${missing[*]} (apt)"
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "expected root or sudo to install ${missing[*]}, found neither"
  SUDO=sudo
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || $SUDO apt-get update
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" fonts-dejavu-core >/dev/null
[ -x /usr/bin/chromium ] || die "expected /usr/bin/chromium after installing it, found none"
note "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo '?')"
