#!/usr/bin/env bash
# Build the four baseline submission images FROM the offline base images, with no network.
#
#   scripts/build_baselines.sh            # mean, knn, ridge (FROM base) and cnn-delta (FROM base-torch)
#   scripts/build_baselines.sh mean ridge # only these
#   scripts/build_baselines.sh --force    # rebuild even when the recipe hash matches
#
# Each image is spared-bench/baseline-<name>:<VERSION> (VERSION = the contract version, 1) and
# carries a recipe-hash label over its base image's id, its Dockerfile and every file it copies
# (the SDK, baselines/common, its own folder); an image whose label matches is skipped, so the
# script is idempotent and cheap to re-run. The build context is submissions/.
# Needs an engine (scripts/ensure_docker.sh) and the base images (scripts/build_base_image.sh).
set -euo pipefail
LOG_TAG=build_baselines
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO="$ROOT"
SUBMISSIONS="$REPO/submissions"
BASE_VERSION="$(tr -d '[:space:]' < "$REPO/images/base/offline/VERSION")"
VERSION=1
HASH_LABEL=org.sparedbench.recipe-hash
ALL=(mean knn ridge cnn-delta)

FORCE=0
NAMES=()
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        mean|knn|ridge|cnn-delta) NAMES+=("$arg") ;;
        *) echo "[build_baselines] error: unknown argument $arg: expected one of ${ALL[*]}, --force or --help" >&2; exit 2 ;;
    esac
done
((${#NAMES[@]})) || NAMES=("${ALL[@]}")


docker info >/dev/null 2>&1 || die "expected a Docker engine answering, found none; run scripts/ensure_docker.sh first"

base_of() {
    case "$1" in
        cnn-delta) echo "spared-bench/base-torch:$BASE_VERSION" ;;
        *) echo "spared-bench/base:$BASE_VERSION" ;;
    esac
}

recipe_hash() {
    local name="$1" base="$2" base_id
    base_id="$(docker image inspect --format '{{.Id}}' "$base" 2>/dev/null)" \
        || die "expected the base image $base, found none; run scripts/build_base_image.sh first"
    {
        echo "$base_id"
        cd "$SUBMISSIONS"
        for f in .dockerignore sdk/spared_sdk.py baselines/common/*.py baselines/"$name"/*; do
            printf '%s\n' "$f"
            cat "$f"
        done
    } | sha256sum | cut -c1-64
}

for name in "${NAMES[@]}"; do
    tag="spared-bench/baseline-$name:$VERSION"
    base="$(base_of "$name")"
    hash="$(recipe_hash "$name" "$base")"
    current="$(docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$tag" 2>/dev/null || true)"
    if [[ $FORCE == 0 && "$current" == "$hash" ]]; then
        say "$tag up to date (recipe ${hash:0:12})"
        continue
    fi
    start=$SECONDS
    log="$(mktemp -t "build-baseline-$name.XXXXXX.log")"
    say "building $tag FROM $base (--network none) ..."
    if ! DOCKER_BUILDKIT=0 docker build --network none --force-rm \
            --build-arg "BASE_IMAGE=$base" --label "$HASH_LABEL=$hash" \
            -t "$tag" -f "$SUBMISSIONS/baselines/$name/Dockerfile" "$SUBMISSIONS" > "$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "docker build of $tag failed; log in $log"
    fi
    rm -f "$log"
    say "built $tag in $((SECONDS - start)) s"
done
say "done in $((SECONDS - LIB_T0)) s"
