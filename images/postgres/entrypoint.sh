#!/bin/bash
# Create the cluster, role and database on first start (POSTGRES_USER / _PASSWORD / _DB),
# then run the server in the foreground (it receives the container's signals).
set -euo pipefail
: "${POSTGRES_USER:=spared}" "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" "${POSTGRES_DB:=spared_bench}"
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
    initdb -D "$PGDATA" --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
        >/dev/null
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -k /run/postgresql" -w start >/dev/null
    psql -h /run/postgresql -d postgres -v ON_ERROR_STOP=1 -q \
        -c "create role \"$POSTGRES_USER\" login password '$POSTGRES_PASSWORD'" \
        -c "create database \"$POSTGRES_DB\" owner \"$POSTGRES_USER\""
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "postgres: created cluster, role $POSTGRES_USER and database $POSTGRES_DB"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c port=5432 -k /run/postgresql \
    -c max_connections=200
