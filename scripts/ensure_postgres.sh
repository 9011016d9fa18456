#!/usr/bin/env bash
# Make sure a PostgreSQL server for SpaRED Bench answers on loopback; install and start one if not.
#
# Idempotent: when the server already answers it prints its URL and exits 0. Otherwise (as root)
# it installs Debian's postgresql when missing, creates a cluster in $SPARED_PG_DATA (owned by
# the `postgres` user), starts it as a plain process (pg_ctl, no systemd) listening on
# 127.0.0.1:$SPARED_PG_PORT only, and creates the role and database. The URL it prints is the
# default of the tests' SPARED_TEST_POSTGRES_URL:
#   postgresql://spared:spared@127.0.0.1:55432/spared_bench
# Loopback only, password auth (scram-sha-256) over TCP: a test and development server.
#
# Environment:
#   SPARED_PG_DATA      cluster folder   (default /var/lib/spared-bench/postgres)
#   SPARED_PG_PORT      TCP port         (default 55432: never clashes with a system cluster)
#   SPARED_PG_USER / SPARED_PG_PASSWORD / SPARED_PG_DB   (default spared / spared / spared_bench)
#   SPARED_PG_LOG       server log       (default $SPARED_PG_DATA/../postgres.log)
#   SPARED_SKIP_APT=1   never call apt-get
# Exit status: 0 server answers; 1 it could not be made to answer (the message says why).
set -euo pipefail
LOG_TAG=ensure_postgres
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA="${SPARED_PG_DATA:-/var/lib/spared-bench/postgres}"
PORT="${SPARED_PG_PORT:-55432}"
USER_NAME="${SPARED_PG_USER:-spared}"
PASSWORD="${SPARED_PG_PASSWORD:-spared}"
DB="${SPARED_PG_DB:-spared_bench}"
LOG_FILE="${SPARED_PG_LOG:-$(dirname "$DATA")/postgres.log}"
SOCKET_DIR="$(dirname "$DATA")/pg-socket"
URL="postgresql://$USER_NAME:$PASSWORD@127.0.0.1:$PORT/$DB"


pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n "$dir" ]] && echo "$dir"
}

as_postgres() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

answers() {
    PGPASSWORD="$PASSWORD" PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" \
        -d "$DB" -Atqc 'select 1' >/dev/null 2>&1
}

install_packages() {
    if [[ -n "$(pg_bin)" ]] && command -v psql >/dev/null 2>&1; then
        return 0
    fi
    [[ "${SPARED_SKIP_APT:-0}" == 1 ]] && die "expected postgresql installed, found none and SPARED_SKIP_APT=1"
    [[ $EUID -eq 0 ]] || die "expected root to apt-get install postgresql, found uid $EUID"
    say "installing postgresql with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    apt-get update -qq >/dev/null || die "apt-get update failed"
    # Debian's package creates (and may try to start) its own cluster on 5432; ours is separate.
    apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null \
        || die "apt-get install postgresql failed"
}

main() {
    local start=$SECONDS
    if command -v psql >/dev/null 2>&1 && answers; then
        say "server answers: $URL"
        echo "$URL"
        return 0
    fi
    install_packages
    local bin
    bin="$(pg_bin)" || die "expected /usr/lib/postgresql/*/bin, found none"
    id postgres >/dev/null 2>&1 || die "expected the postgres user (created by Debian's package), found none"

    mkdir -p "$(dirname "$DATA")" "$SOCKET_DIR"
    chown postgres:postgres "$SOCKET_DIR" 2>/dev/null || true
    touch "$LOG_FILE" && chown postgres:postgres "$LOG_FILE" 2>/dev/null || true
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
        say "creating cluster in $DATA"
        mkdir -p "$DATA"
        chown postgres:postgres "$DATA"
        chmod 700 "$DATA"
        as_postgres "$bin/initdb" -D "$DATA" --auth-local=trust --auth-host=scram-sha-256 \
            --encoding=UTF8 --locale=C.UTF-8 >/dev/null || die "initdb $DATA failed"
    fi
    if ! as_postgres "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        say "starting postgres on 127.0.0.1:$PORT; log: $LOG_FILE"
        # setsid: the server must outlive this script and the shell (or pytest) that ran it.
        as_postgres setsid "$bin/pg_ctl" -D "$DATA" -l "$LOG_FILE" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCKET_DIR -c max_connections=200" \
            start >/dev/null || { tail -n 20 "$LOG_FILE" >&2; die "pg_ctl start failed; see $LOG_FILE"; }
    fi
    local psql_admin=(as_postgres psql -h "$SOCKET_DIR" -p "$PORT" -d postgres -Atq -v ON_ERROR_STOP=1)
    if [[ "$("${psql_admin[@]}" -c "select 1 from pg_roles where rolname = '$USER_NAME'")" != 1 ]]; then
        "${psql_admin[@]}" -c "create role \"$USER_NAME\" login createdb password '$PASSWORD'" \
            || die "could not create role $USER_NAME"
    fi
    if [[ "$("${psql_admin[@]}" -c "select 1 from pg_database where datname = '$DB'")" != 1 ]]; then
        "${psql_admin[@]}" -c "create database \"$DB\" owner \"$USER_NAME\"" \
            || die "could not create database $DB"
    fi
    answers || die "expected $URL to answer after starting, found it silent; see $LOG_FILE"
    say "server answers after $((SECONDS - start)) s: $URL"
    echo "$URL"
}

main "$@"
