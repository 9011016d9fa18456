#!/bin/sh
# Start this host's own Docker engine, wait for it, then run the given command (the worker).
# The engine keeps its containers' cgroups under /spared-worker-host-$WORKER_HOST_ID and has
# no bridge: job containers run without a network anyway.
set -eu
id="${WORKER_HOST_ID:-$(cat /proc/sys/kernel/random/uuid | cut -c1-8)}"
dockerd --storage-driver="${WORKER_HOST_STORAGE_DRIVER:-overlay2}" --bridge=none \
    --iptables=false --ip6tables=false --ip-masq=false --cgroup-parent="/spared-worker-host-$id" \
    --data-root=/var/lib/docker >/var/log/dockerd.log 2>&1 &
tries=0
until docker info >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 150 ]; then
        echo "worker-host: expected the Docker engine to start within 30 s, found it silent:" >&2
        tail -n 20 /var/log/dockerd.log >&2
        exit 1
    fi
    sleep 0.2
done
echo "worker-host $id: engine up" >&2
exec "$@"
