#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine; install and start one if not.
#
# Idempotent: when `docker info` already works it prints so and exits 0 without touching
# anything. Otherwise (as root) it installs Debian's docker.io and debootstrap when missing,
# starts dockerd in the background (detached, logging to $SPARED_DOCKERD_LOG) and waits for it.
#
# Nested environments (a container or micro-VM without systemd) differ in what dockerd can use,
# so starting walks a ladder of configurations and keeps the first that answers:
#   1. defaults (overlay2, bridge network, iptables)
#   2. no iptables, no bridge     (submissions and builds run with --network none anyway)
#   3. + fuse-overlayfs storage   (when overlay2 cannot mount, e.g. overlay on overlay)
#   4. + vfs storage              (always works, slow and disk-hungry: last resort)
# SPARED_DOCKERD_ARGS, when set, replaces the ladder with exactly those arguments.
#
# Environment:
#   SPARED_DOCKERD_LOG     dockerd log file       (default /var/log/spared-dockerd.log)
#   SPARED_DOCKER_WAIT_S   seconds to wait per attempt for `docker info` (default 60)
#   SPARED_DOCKERD_ARGS    explicit dockerd arguments (skips the ladder)
#   SPARED_SKIP_APT=1      never call apt-get (fail instead when something is missing)
# Exit status: 0 engine answers; 1 it could not be made to answer (the message says why).
set -euo pipefail
LOG_TAG=ensure_docker
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOG_FILE="${SPARED_DOCKERD_LOG:-/var/log/spared-dockerd.log}"
WAIT_S="${SPARED_DOCKER_WAIT_S:-60}"
PIDFILE=/var/run/docker.pid


engine_answers() { docker info >/dev/null 2>&1; }

# Prefer the CLI that came with the engine we install when no other exists; any CLI will do
# (API versions are negotiated).
need_apt_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker >/dev/null 2>&1 || missing+=(docker.io)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    # fuse-overlayfs is only a fallback storage driver; install it alongside when fuse exists.
    if [[ -e /dev/fuse ]] && ! command -v fuse-overlayfs >/dev/null 2>&1; then
        missing+=(fuse-overlayfs)
    fi
    printf '%s\n' "${missing[@]}" | sort -u | grep -v '^$' || true
}

install_packages() {
    local packages
    packages=$(need_apt_packages)
    [[ -z "$packages" ]] && return 0
    if [[ "${SPARED_SKIP_APT:-0}" == 1 ]]; then
        die "expected $(echo "$packages" | tr '\n' ' ')installed, found them missing and SPARED_SKIP_APT=1"
    fi
    command -v apt-get >/dev/null 2>&1 || die "expected apt-get to install $(echo $packages), found none"
    say "installing $(echo $packages) with apt-get ..."
    local start=$SECONDS
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
    apt-get update -qq >/dev/null || die "apt-get update failed"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $packages >/dev/null \
        || die "apt-get install $(echo $packages) failed"
    say "installed in $((SECONDS - start)) s"
}

# cgroup v2 as the only hierarchy (unified mode) inside a container: processes sit in the root
# cgroup, which may not enable controllers for children. Move them to a leaf and delegate all
# controllers, as the upstream docker:dind entrypoint does.
prepare_cgroups() {
    if [[ ! -d /sys/fs/cgroup ]] || ! mountpoint -q /sys/fs/cgroup; then
        say "mounting cgroup filesystem"
        mkdir -p /sys/fs/cgroup
        mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null \
            || die "expected /sys/fs/cgroup mounted or mountable, found neither (is this container privileged?)"
    fi
    if [[ -f /sys/fs/cgroup/cgroup.controllers && -w /sys/fs/cgroup/cgroup.subtree_control ]]; then
        if [[ -z "$(cat /sys/fs/cgroup/cgroup.subtree_control)" ]]; then
            say "cgroup v2: moving processes to /init and delegating controllers"
            mkdir -p /sys/fs/cgroup/init
            xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs 2>/dev/null || true
            sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \
                > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
        fi
    fi
}

dockerd_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Wait for `docker info`; returns 1 early when the daemon process $1 exits.
wait_for_engine() {
    local pid="$1" deadline=$((SECONDS + WAIT_S))
    while (( SECONDS < deadline )); do
        engine_answers && return 0
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.5
    done
    return 1
}

start_dockerd() {
    local args="$1"
    say "starting dockerd ${args:-(defaults)}; log: $LOG_FILE"
    mkdir -p "$(dirname "$LOG_FILE")"
    printf '\n==== %s dockerd %s\n' "$(date -Is)" "$args" >> "$LOG_FILE"
    # setsid + nohup: the daemon must outlive this script and the shell (or pytest) that ran it.
    # shellcheck disable=SC2086
    setsid nohup dockerd $args >> "$LOG_FILE" 2>&1 < /dev/null &
    local pid=$!
    if wait_for_engine "$pid"; then
        return 0
    fi
    if kill -0 "$pid" 2>/dev/null; then
        say "dockerd (pid $pid) did not answer within ${WAIT_S} s; stopping it"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
    else
        say "dockerd exited; last log lines:"
        tail -n 5 "$LOG_FILE" | sed 's/^/    /' >&2
    fi
    rm -f "$PIDFILE"
    return 1
}

main() {
    local start=$SECONDS
    if command -v docker >/dev/null 2>&1 && engine_answers; then
        say "engine answers: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null)"
        if ! command -v debootstrap >/dev/null 2>&1 && [[ $EUID -eq 0 ]]; then
            install_packages
        fi
        return 0
    fi
    [[ $EUID -eq 0 ]] || die "expected a Docker engine answering or root to start one, found neither (run as root, or start dockerd)"

    install_packages

    # A daemon that is already starting (or hung) owns the pidfile: wait for it rather than
    # starting a second one over the same data root.
    local pid
    if pid=$(dockerd_pid); then
        say "dockerd already running (pid $pid); waiting for it to answer"
        wait_for_engine "$pid" && { say "engine answers after $((SECONDS - start)) s"; return 0; }
        die "expected dockerd pid $pid to answer within ${WAIT_S} s, found it silent; see $LOG_FILE"
    fi

    prepare_cgroups

    local -a ladder
    if [[ -n "${SPARED_DOCKERD_ARGS:-}" ]]; then
        ladder=("$SPARED_DOCKERD_ARGS")
    else
        local nonet="--iptables=false --ip6tables=false --bridge=none"
        ladder=("" "$nonet")
        command -v fuse-overlayfs >/dev/null 2>&1 && [[ -e /dev/fuse ]] \
            && ladder+=("$nonet --storage-driver=fuse-overlayfs")
        ladder+=("$nonet --storage-driver=vfs")
    fi
    local args
    for args in "${ladder[@]}"; do
        if start_dockerd "$args"; then
            say "engine answers after $((SECONDS - start)) s: $(docker info --format 'storage {{.Driver}}, cgroup v{{.CgroupVersion}} ({{.CgroupDriver}}), server {{.ServerVersion}}' 2>/dev/null)"
            return 0
        fi
    done
    die "expected dockerd to start with one of ${#ladder[@]} configurations, found every one failing; see $LOG_FILE"
}

main "$@"
