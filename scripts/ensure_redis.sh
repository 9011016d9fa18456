#!/usr/bin/env bash
# Make sure a Redis server for SpaRED Bench answers on loopback; install and start one if not.
#
# Idempotent: when the server already answers it prints its URL and exits 0. Otherwise it
# installs Debian's redis-server when missing (as root) and starts it as a plain daemonized
# process (no systemd) bound to 127.0.0.1:$SPARED_REDIS_PORT only, with its files in
# $SPARED_REDIS_DIR. The URL it prints is the default of the tests' SPARED_TEST_REDIS_URL:
#   redis://127.0.0.1:56379/0
#
# Environment:
#   SPARED_REDIS_PORT   TCP port     (default 56379: never clashes with a system redis)
#   SPARED_REDIS_DIR    data folder  (default /var/lib/spared-bench/redis)
#   SPARED_SKIP_APT=1   never call apt-get
# Exit status: 0 server answers; 1 it could not be made to answer (the message says why).
set -euo pipefail
LOG_TAG=ensure_redis
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${SPARED_REDIS_PORT:-56379}"
DIR="${SPARED_REDIS_DIR:-/var/lib/spared-bench/redis}"
URL="redis://127.0.0.1:$PORT/0"


answers() { [[ "$(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" == PONG ]]; }

main() {
    local start=$SECONDS
    if command -v redis-cli >/dev/null 2>&1 && answers; then
        say "server answers: $URL"
        echo "$URL"
        return 0
    fi
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        [[ "${SPARED_SKIP_APT:-0}" == 1 ]] && die "expected redis-server installed, found none and SPARED_SKIP_APT=1"
        [[ $EUID -eq 0 ]] || die "expected root to apt-get install redis-server, found uid $EUID"
        say "installing redis-server with apt-get ..."
        export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
        apt-get update -qq >/dev/null || die "apt-get update failed"
        apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null \
            || die "apt-get install redis-server failed"
    fi
    mkdir -p "$DIR"
    say "starting redis-server on 127.0.0.1:$PORT; files in $DIR"
    # Persistence: append-only file, so queued jobs survive a restart of the server.
    redis-server --bind 127.0.0.1 --port "$PORT" --protected-mode yes --daemonize yes \
        --dir "$DIR" --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" \
        --appendonly yes --save "" >/dev/null || die "redis-server failed to start; see $DIR/redis.log"
    local deadline=$((SECONDS + 30))
    until answers; do
        (( SECONDS < deadline )) || { tail -n 20 "$DIR/redis.log" >&2; die "expected redis on port $PORT to answer within 30 s, found it silent"; }
        sleep 0.2
    done
    say "server answers after $((SECONDS - start)) s: $URL"
    echo "$URL"
}

main "$@"
