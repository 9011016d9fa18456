#!/usr/bin/env bash
# Build the submission base images offline: no container registry needed, only apt + PyPI.
#
#   scripts/build_base_image.sh            # debian-py, base and base-torch
#   scripts/build_base_image.sh --no-torch # debian-py and base only
#   scripts/build_base_image.sh --force    # rebuild even when the recipe hashes match
#
# Steps (each skipped when an image with the same recipe-hash label exists):
#   1. debootstrap --variant=minbase bookworm + python3 (3.11, the host's wheel ABI) into
#      images/base/cache/, then `tar | docker import` it as spared-bench/debian-py:bookworm
#   2. pip download the wheels of offline/requirements-base.txt on the host into
#      images/base/wheels/base, then `docker build --network none` spared-bench/base:<VERSION>
#      from offline/Dockerfile (pip install --no-index --find-links)
#   3. the same for torch (offline/requirements-torch.txt, the CPU wheel from $SPARED_TORCH_WHEEL)
#      into spared-bench/base-torch:<VERSION>
# Prints each step's wall time. Needs root (debootstrap) and an engine (scripts/ensure_docker.sh).
#
# Environment:
#   SPARED_BASE_CACHE     debootstrap cache folder   (default images/base/cache)
#   SPARED_BASE_WHEELS    downloaded wheels folder   (default images/base/wheels)
#   SPARED_DEBIAN_MIRROR  Debian mirror              (default http://deb.debian.org/debian)
#   SPARED_TORCH_WHEEL    CPU torch wheel file       (default /opt/wheels/torch-2.13.0+cpu-...)
#   SPARED_PIP            pip used to download wheels (default .venv/bin/pip, else python3 -m pip)
set -euo pipefail
LOG_TAG=build_base
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO="$ROOT"
BASE_DIR="$REPO/images/base"
OFFLINE="$BASE_DIR/offline"
CACHE="${SPARED_BASE_CACHE:-$BASE_DIR/cache}"
WHEELS="${SPARED_BASE_WHEELS:-$BASE_DIR/wheels}"
MIRROR="${SPARED_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TORCH_WHEEL="${SPARED_TORCH_WHEEL:-/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl}"
VERSION="$(tr -d '[:space:]' < "$OFFLINE/VERSION")"

SUITE=bookworm
VARIANT=minbase
# python3-venv brings ensurepip's bundled pip wheel: pip without the network, and without
# python3-pip's long dependency list.
INCLUDE=python3,python3-venv
DEBIAN_PY_IMAGE="spared-bench/debian-py:$SUITE"
BASE_IMAGE="spared-bench/base:$VERSION"
TORCH_IMAGE="spared-bench/base-torch:$VERSION"
HASH_LABEL=org.sparedbench.recipe-hash
# Bump when this script's handling of a step changes in a way the hashed inputs do not show.
SCRIPT_RECIPE=3

WITH_TORCH=1
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --no-torch) WITH_TORCH=0 ;;
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "[build_base] error: unknown argument $arg: expected --no-torch, --force or --help" >&2; exit 2 ;;
    esac
done

SUMMARY=()
record() { SUMMARY+=("$(printf '%-34s %5d s' "$1" "$2")"); }

if [[ -n "${SPARED_PIP:-}" ]]; then
    read -r -a PIP <<< "$SPARED_PIP"
elif [[ -x "$REPO/.venv/bin/pip" ]]; then
    PIP=("$REPO/.venv/bin/pip")
else
    PIP=(python3 -m pip)
fi

docker info >/dev/null 2>&1 || die "expected a Docker engine answering, found none; run scripts/ensure_docker.sh first"

up_to_date() { [[ $FORCE == 0 && "$(image_hash "$1")" == "$2" ]]; }

# Recipe hashes chain: a change below invalidates everything built on top.
DEBIAN_HASH="$(printf '%s|%s|%s|%s|%s' "$SUITE" "$VARIANT" "$INCLUDE" "$SCRIPT_RECIPE" "$(uname -m)" | sha)"
BASE_HASH="$( { echo "$DEBIAN_HASH"; cat "$OFFLINE/Dockerfile" "$OFFLINE/requirements-base.txt"; } | sha)"
TORCH_HASH="$( { echo "$BASE_HASH"; cat "$OFFLINE/Dockerfile.torch" "$OFFLINE/requirements-torch.txt"; basename "$TORCH_WHEEL"; } | sha)"

# Download wheels for CPython 3.11 on this platform (the host is bookworm too, so its manylinux
# tags are the image's); --only-binary because nothing can compile inside the offline build.
download_wheels() {
    local dest="$1"; shift
    mkdir -p "$dest"
    "${PIP[@]}" download --quiet --disable-pip-version-check --only-binary=:all: \
        --python-version 3.11 --implementation cp -d "$dest" "$@" \
        2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2) \
        || die "pip download into $dest failed (is PyPI reachable?)"
}

# requirements file without comments, as pip and the image see it
strip_comments() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$1"; }

# name==version for every wheel in a folder: pins the torch step's shared dependencies to the
# versions already in the base image.
wheel_constraints() {
    local whl name version
    for whl in "$1"/*.whl; do
        whl="$(basename "$whl")"
        name="${whl%%-*}"
        version="${whl#*-}"; version="${version%%-*}"
        printf '%s==%s\n' "$name" "$version"
    done
}

step_debian_py() {
    if up_to_date "$DEBIAN_PY_IMAGE" "$DEBIAN_HASH"; then
        say "$DEBIAN_PY_IMAGE up to date (recipe ${DEBIAN_HASH:0:12})"
        return 0
    fi
    [[ $EUID -eq 0 ]] || die "expected root for debootstrap, found uid $EUID"
    command -v debootstrap >/dev/null 2>&1 || die "expected debootstrap installed, found none; run scripts/ensure_docker.sh (it installs it)"
    local rootfs="$CACHE/rootfs-$SUITE-${DEBIAN_HASH:0:12}"
    local start=$SECONDS
    if [[ -f "$rootfs/.spared-complete" ]]; then
        say "reusing debootstrapped root $rootfs"
    else
        [[ -e "$rootfs" ]] && { say "removing incomplete $rootfs"; umount_below "$rootfs"; rm -rf "$rootfs"; }
        mkdir -p "$CACHE"
        say "debootstrap --variant=$VARIANT --include=$INCLUDE $SUITE from $MIRROR (about a minute) ..."
        if ! debootstrap --variant="$VARIANT" --include="$INCLUDE" "$SUITE" "$rootfs" "$MIRROR" \
                > "$CACHE/debootstrap.log" 2>&1; then
            umount_below "$rootfs"
            tail -n 20 "$CACHE/debootstrap.log" >&2
            die "debootstrap failed; full log in $CACHE/debootstrap.log"
        fi
        umount_below "$rootfs"
        # Lean image: package caches and documentation are of no use to a submission.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
               "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
        touch "$rootfs/.spared-complete"
        record "debootstrap" $((SECONDS - start))
        say "debootstrap done in $((SECONDS - start)) s ($(du -sh --exclude=proc "$rootfs" | cut -f1))"
    fi
    start=$SECONDS
    say "importing $rootfs as $DEBIAN_PY_IMAGE ..."
    tar -C "$rootfs" --numeric-owner --exclude=./.spared-complete --exclude=./proc/* \
        --exclude=./sys/* --exclude=./dev/* -cf - . \
        | docker import \
            --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
            --change "ENV LANG=C.UTF-8" \
            --change "CMD [\"python3\"]" \
            --change "LABEL $HASH_LABEL=$DEBIAN_HASH" \
            --message "debootstrap --variant=$VARIANT --include=$INCLUDE $SUITE" \
            - "$DEBIAN_PY_IMAGE" >/dev/null \
        || die "docker import of $rootfs failed"
    record "docker import" $((SECONDS - start))
    say "imported in $((SECONDS - start)) s"
}

umount_below() {
    local dir="$1" mnt
    [[ -d "$dir" ]] || return 0
    # deepest first
    for mnt in $(awk -v d="$dir" '$2 ~ "^"d {print $2}' /proc/mounts | sort -r); do
        umount -l "$mnt" 2>/dev/null || true
    done
}

# docker build with the classic builder: it is what the engine offers without buildx, and
# --network none works with it. A fresh --label carries the recipe hash.
docker_build() {
    local tag="$1" hash="$2" dockerfile="$3" context="$4"; shift 4
    local start=$SECONDS
    say "building $tag (--network none) ..."
    if ! DOCKER_BUILDKIT=0 docker build --network none --force-rm \
            --label "$HASH_LABEL=$hash" -t "$tag" -f "$dockerfile" "$@" "$context" \
            > "$CACHE/build-${tag//[:\/]/_}.log" 2>&1; then
        tail -n 30 "$CACHE/build-${tag//[:\/]/_}.log" >&2
        die "docker build of $tag failed; log in $CACHE/build-${tag//[:\/]/_}.log"
    fi
    record "docker build $tag" $((SECONDS - start))
    say "built $tag in $((SECONDS - start)) s ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

step_base() {
    if up_to_date "$BASE_IMAGE" "$BASE_HASH"; then
        say "$BASE_IMAGE up to date (recipe ${BASE_HASH:0:12})"
        return 0
    fi
    local dest="$WHEELS/base" start=$SECONDS
    rm -rf "$dest"
    mkdir -p "$dest" "$CACHE"
    strip_comments "$OFFLINE/requirements-base.txt" > "$dest/requirements.txt"
    say "downloading base wheels into $dest ..."
    download_wheels "$dest" -r "$dest/requirements.txt"
    record "pip download base wheels" $((SECONDS - start))
    say "$(find "$dest" -name '*.whl' | wc -l) wheels, $(du -sh "$dest" | cut -f1) in $((SECONDS - start)) s"
    docker_build "$BASE_IMAGE" "$BASE_HASH" "$OFFLINE/Dockerfile" "$dest" \
        --build-arg "DEBIAN_PY_IMAGE=$DEBIAN_PY_IMAGE"
}

step_torch() {
    if up_to_date "$TORCH_IMAGE" "$TORCH_HASH"; then
        say "$TORCH_IMAGE up to date (recipe ${TORCH_HASH:0:12})"
        return 0
    fi
    [[ -f "$TORCH_WHEEL" ]] || die "expected the CPU torch wheel at $TORCH_WHEEL, found nothing (set SPARED_TORCH_WHEEL)"
    [[ -d "$WHEELS/base" ]] || die "expected base wheels in $WHEELS/base, found none; run without --no-torch after a --force"
    local dest="$WHEELS/torch" start=$SECONDS
    rm -rf "$dest"
    mkdir -p "$dest"
    wheel_constraints "$WHEELS/base" > "$dest/constraints.txt"
    say "downloading torch and its dependencies into $dest ..."
    download_wheels "$dest" -c "$dest/constraints.txt" "$TORCH_WHEEL"
    strip_comments "$OFFLINE/requirements-torch.txt" > "$dest/requirements.txt"
    record "pip download torch wheels" $((SECONDS - start))
    say "$(find "$dest" -name '*.whl' | wc -l) wheels, $(du -sh "$dest" | cut -f1) in $((SECONDS - start)) s"
    docker_build "$TORCH_IMAGE" "$TORCH_HASH" "$OFFLINE/Dockerfile.torch" "$dest" \
        --build-arg "BASE_IMAGE=$BASE_IMAGE"
}

step_debian_py
step_base
[[ $WITH_TORCH == 1 ]] && step_torch

say "done in $((SECONDS - LIB_T0)) s"
if ((${#SUMMARY[@]})); then
    printf '[build_base] timings:\n' >&2
    printf '  %s\n' "${SUMMARY[@]}" >&2
fi
docker image ls --format '  {{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}' 'spared-bench/*' >&2
