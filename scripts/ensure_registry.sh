#!/usr/bin/env bash
# Make sure Debian's docker-registry (distribution 2.8) is installed; print its path.
#
# Idempotent. The registry itself is started by `spared-bench registry serve` (it writes the
# configuration: storage under $SPARED_BENCH_HOME/registry, token authentication by the web
# app), so each service (and each test) runs its own on its own port.
#
# Environment:
#   SPARED_SKIP_APT=1   never call apt-get
# Exit status: 0 installed; 1 it could not be installed (the message says why).
set -euo pipefail
LOG_TAG=ensure_registry
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    if ! command -v docker-registry >/dev/null 2>&1; then
        [[ "${SPARED_SKIP_APT:-0}" == 1 ]] && die "expected docker-registry installed, found none and SPARED_SKIP_APT=1"
        [[ $EUID -eq 0 ]] || die "expected root to apt-get install docker-registry, found uid $EUID"
        say "installing docker-registry with apt-get ..."
        export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
        apt-get update -qq >/dev/null || die "apt-get update failed"
        apt-get install -y -qq --no-install-recommends docker-registry >/dev/null \
            || die "apt-get install docker-registry failed"
        # The package starts nothing here (no systemd); its own service would use port 5000.
    fi
    command -v docker-registry
}

main "$@"
