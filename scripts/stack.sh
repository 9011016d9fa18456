#!/usr/bin/env bash
# Build, start and stop the scaled stack of compose.yaml (Postgres, Redis, the submission
# registry, web, N workers).
#
#   bash scripts/stack.sh build            # the four images, offline (idempotent, recipe hashes)
#   bash scripts/stack.sh up [N] [--gpu]   # build if needed, then start with N CPU workers
#                                          # (default 2); --gpu adds the gpu-worker service
#   bash scripts/stack.sh down [--volumes] # stop and remove containers (and the data volumes)
#   bash scripts/stack.sh ps | logs [SERVICE] | exec SERVICE CMD...   # passed to docker-compose
#
# Offline: no registry is reachable, so every image is built here with `docker build
# --network none`:
#   spared-bench/postgres:15, spared-bench/redis:7, spared-bench/registry:2.8
#       FROM spared-bench/debian-py:bookworm (the
#       debootstrapped rootfs of scripts/build_base_image.sh) + Debian's packages. apt inside
#       the build has no network, so the exact packages it would install are computed by
#       `apt-get install -s` in that image with the host's apt lists mounted, downloaded on the
#       host with `apt-get download` into images/<name>/debs/ and installed from there.
#   spared-bench/evaluator:1  FROM spared-bench/base:1 + a wheelhouse made on the host
#       (images/evaluator/wheels: the project's wheel and its service dependencies, pinned to
#       the host's .venv) installed with pip --no-index.
#   spared-bench/worker-host:1  FROM the evaluator image + Debian's docker.io: a worker with a
#       Docker engine of its own, for machines that share no disk with the service.
#   spared-bench/leaderboard:1  FROM the evaluator image + a health endpoint (until the web app).
# Workers and web share $SPARED_STACK_HOME (releases, staging, image archives), mounted at the
# same path as on the host. Needs root, an engine (scripts/ensure_docker.sh) and docker-compose
# (installed from Debian when missing).
#
# Environment:
#   SPARED_STACK_HOME        shared folder          (default /var/lib/spared-bench/stack)
#   SPARED_STACK_PROJECT     compose project name   (default spared-bench)
#   SPARED_STACK_PG_PORT     Postgres on 127.0.0.1  (default 55433)
#   SPARED_STACK_WEB_PORT    web on 127.0.0.1       (default 8080)
#   SPARED_STACK_PUBLIC_URL  the web app's address  (default http://127.0.0.1:$SPARED_STACK_WEB_PORT)
#   SPARED_STACK_REGISTRY_PORT registry on 127.0.0.1 (default 5000)
#   SPARED_STACK_DB_PASSWORD database password      (default spared)
#   SPARED_STACK_GPUS        the gpu-worker's GPU   (default 0)
set -euo pipefail
LOG_TAG=stack
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

export SPARED_STACK_HOME="${SPARED_STACK_HOME:-/var/lib/spared-bench/stack}"
export SPARED_STACK_PUBLIC_URL="${SPARED_STACK_PUBLIC_URL:-http://127.0.0.1:${SPARED_STACK_WEB_PORT:-8080}}"
PROJECT="${SPARED_STACK_PROJECT:-spared-bench}"
BASE_VERSION="$(tr -d '[:space:]' < images/base/offline/VERSION)"
BASE_IMAGE="spared-bench/base:$BASE_VERSION"
DEBIAN_PY_IMAGE="spared-bench/debian-py:bookworm"
HASH_LABEL=org.sparedbench.recipe-hash
LOG_DIR="$ROOT/var/stack-build"
# Bump when this script's handling of a recipe changes in a way the hashed inputs do not show.
SCRIPT_RECIPE=1
# Service dependencies of the evaluator image: the project's core with its web and worker
# extras, read from pyproject.toml (no torch, no squidpy: workers stage, run containers and
# score; the web app serves). Versions come from the host's .venv (constraints).
# async-timeout: redis needs it under Python < 3.11.3 (the image's Debian 3.11.2), a marker pip
# judges by the host's Python when downloading, so it is named here.
mapfile -t EVALUATOR_REQUIREMENTS < <("$VENV/bin/python" - "$ROOT/pyproject.toml" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for requirement in [*project["dependencies"], *project["optional-dependencies"]["web"],
                    *project["optional-dependencies"]["worker"], "async-timeout"]:
    print(requirement)
PY
)

compose() { docker-compose -p "$PROJECT" -f "$ROOT/compose.yaml" "$@"; }

need_tools() {
    docker info >/dev/null 2>&1 || bash scripts/ensure_docker.sh
    if ! command -v docker-compose >/dev/null 2>&1; then
        step "installing docker-compose (Debian)"
        apt-get update -qq >/dev/null || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            docker-compose >/dev/null || die "apt-get install docker-compose failed"
    fi
}

docker_build() {
    local tag="$1" hash="$2" context="$3"; shift 3
    mkdir -p "$LOG_DIR"
    local log="$LOG_DIR/${tag//[:\/]/_}.log" start=$SECONDS
    note "building $tag (--network none) ..."
    if ! DOCKER_BUILDKIT=0 docker build --network none --force-rm --label "$HASH_LABEL=$hash" \
            -t "$tag" "$@" "$context" > "$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "docker build of $tag failed; log in $log"
    fi
    note "built $tag in $((SECONDS - start)) s"
}

# The .deb files apt would install on top of the debian-py image for PACKAGES, downloaded on
# the host into DEST (the host is bookworm too; its apt lists decide the versions).
fetch_debs() {  # dest packages... (on top of $ON_IMAGE, default the debian-py image)
    local dest="$1"; shift
    local names on="${ON_IMAGE:-$DEBIAN_PY_IMAGE}"
    names=$(docker run --rm --network none -v /var/lib/apt/lists:/var/lib/apt/lists:ro \
        -v /etc/apt/sources.list.d:/etc/apt/sources.list.d:ro --user 0 --entrypoint sh "$on" \
        -c "apt-get install -s --no-install-recommends $* 2>&1 | awk '/^Inst /{print \$2}'")
    [[ -n "$names" ]] || die "apt-get install -s $* in $on listed nothing; run apt-get update on the host"
    rm -rf "$dest" && mkdir -p "$dest"
    # shellcheck disable=SC2086
    (cd "$dest" && apt-get download $names >/dev/null 2>&1) \
        || { apt-get update -qq >/dev/null; (cd "$dest" && apt-get download $names >/dev/null); } \
        || die "apt-get download of $(echo $names | wc -w) packages into $dest failed"
    note "$(ls "$dest" | wc -l) packages for $*: $(du -sh "$dest" | cut -f1)"
}

build_service() {  # name tag packages...
    local name="$1" tag="$2"; shift 2
    local hash
    hash=$( { echo "$SCRIPT_RECIPE $*"; image_hash "$DEBIAN_PY_IMAGE"; cat "images/$name/Dockerfile";
              cat images/"$name"/*.sh 2>/dev/null || true; } | sha)
    if [[ "$(image_hash "$tag")" == "$hash" ]]; then
        note "$tag up to date"
        return 0
    fi
    fetch_debs "images/$name/debs" "$@"
    docker_build "$tag" "$hash" "images/$name" --build-arg "DEBIAN_PY_IMAGE=$DEBIAN_PY_IMAGE"
}

build_evaluator() {
    local wheels="images/evaluator/wheels" hash
    hash=$( { echo "$SCRIPT_RECIPE ${EVALUATOR_REQUIREMENTS[*]}"; image_hash "$BASE_IMAGE";
              cat images/evaluator/Dockerfile pyproject.toml;
              git ls-files -s evaluator | sha; git diff HEAD -- evaluator | sha; } | sha)
    if [[ "$(image_hash spared-bench/evaluator:1)" == "$hash" ]]; then
        note "spared-bench/evaluator:1 up to date"
    else
        rm -rf "$wheels" && mkdir -p "$wheels"
        "$VENV/bin/pip" freeze --exclude-editable | grep -v '^-e' > "$wheels/constraints.txt"
        printf '%s\n' "${EVALUATOR_REQUIREMENTS[@]}" > "$wheels/requirements.txt"
        local image_python
        image_python=$(docker run --rm --network none --entrypoint python3 "$BASE_IMAGE" \
            -c 'import platform; print(platform.python_version())')
        note "downloading the evaluator's wheels (pinned to .venv, Python $image_python) ..."
        "$VENV/bin/pip" download --quiet --disable-pip-version-check --only-binary=:all: \
            --python-version "$image_python" --implementation cp \
            -c "$wheels/constraints.txt" -r "$wheels/requirements.txt" -d "$wheels" \
            2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2) \
            || die "pip download of the evaluator's dependencies failed (is PyPI reachable?)"
        # setuptools builds in the source tree: remove its build/ folder unless it was there.
        local had_build=0
        [[ -d build ]] && had_build=1
        "$VENV/bin/pip" wheel --quiet --no-deps --disable-pip-version-check -w "$wheels" . \
            2> >(grep -v 'is ignored' >&2) || die "pip wheel of the project failed"
        [[ $had_build == 1 ]] || rm -rf build
        # constraints pin, requirements choose; pip sees both inside the build
        sed -i "1i -c constraints.txt" "$wheels/requirements.txt"
        note "$(ls "$wheels"/*.whl | wc -l) wheels, $(du -sh "$wheels" | cut -f1)"
        docker_build spared-bench/evaluator:1 "$hash" "$wheels" -f images/evaluator/Dockerfile \
            --build-arg "BASE_IMAGE=$BASE_IMAGE"
    fi
    local web_hash
    web_hash=$( { echo "$hash"; cat images/leaderboard/Dockerfile images/leaderboard/health.py images/leaderboard/start.sh; } | sha)
    if [[ "$(image_hash spared-bench/leaderboard:1)" == "$web_hash" ]]; then
        note "spared-bench/leaderboard:1 up to date"
    else
        docker_build spared-bench/leaderboard:1 "$web_hash" images/leaderboard \
            --build-arg EVALUATOR_IMAGE=spared-bench/evaluator:1
    fi
}

build_worker_host() {  # the evaluator with a Docker engine of its own (images/worker-host)
    local hash
    hash=$( { echo "$SCRIPT_RECIPE docker.io"; image_hash spared-bench/evaluator:1;
              cat images/worker-host/Dockerfile images/worker-host/start.sh; } | sha)
    if [[ "$(image_hash spared-bench/worker-host:1)" == "$hash" ]]; then
        note "spared-bench/worker-host:1 up to date"
        return 0
    fi
    ON_IMAGE=spared-bench/evaluator:1 fetch_debs images/worker-host/debs docker.io
    docker_build spared-bench/worker-host:1 "$hash" images/worker-host \
        --build-arg EVALUATOR_IMAGE=spared-bench/evaluator:1
}

cmd_build() {
    need_tools
    step "base images (scripts/build_base_image.sh --no-torch)"
    bash scripts/build_base_image.sh --no-torch
    step "stack images"
    build_service postgres spared-bench/postgres:15 postgresql-15 postgresql-client-15
    build_service redis spared-bench/redis:7 redis-server
    build_service registry spared-bench/registry:2.8 docker-registry
    build_evaluator
    build_worker_host
}

cmd_up() {
    local workers=2 profile=()
    for arg in "$@"; do
        case "$arg" in
            --gpu) profile=(--profile gpu) ;;
            ''|*[!0-9]*) die "expected up [N] [--gpu], found $arg" ;;
            *) workers="$arg" ;;
        esac
    done
    cmd_build
    # The web app (uid 10001, as every job container) keeps uploaded archives in images/.
    mkdir -p "$SPARED_STACK_HOME/images"
    chown 10001:10001 "$SPARED_STACK_HOME/images"
    # The registry's configuration, token key and storage (the key signs the web app's and
    # the workers' registry tokens; the registry trusts its certificate). Realm: the web app
    # as Docker clients (authors, this host's engine) reach it.
    step "registry configuration (realm $SPARED_STACK_PUBLIC_URL/api/registry/token)"
    docker run --rm --network none --user 0:0 -e SPARED_BENCH_HOME="$SPARED_STACK_HOME" \
        -v "$SPARED_STACK_HOME:$SPARED_STACK_HOME" spared-bench/evaluator:1 \
        spared-bench registry serve --config-only --listen 0.0.0.0:5000 \
        --realm "$SPARED_STACK_PUBLIC_URL/api/registry/token" >/dev/null \
        || die "writing the registry's configuration failed"
    chown -R 10001:10001 "$SPARED_STACK_HOME/registry"
    step "starting the stack ($workers worker(s)) as project $PROJECT; home $SPARED_STACK_HOME"
    # --no-build: every image was built above, offline; compose must not try a registry.
    compose "${profile[@]}" up -d --no-build --scale "worker=$workers" >&2
    local deadline=$((SECONDS + 120))
    until curl -fsS "http://127.0.0.1:${SPARED_STACK_WEB_PORT:-8080}/healthz" >/dev/null 2>&1; do
        (( SECONDS < deadline )) || { compose logs --tail 30 >&2; die "expected the web health endpoint to answer within 120 s, found it silent"; }
        sleep 1
    done
    note "stack up: web http://127.0.0.1:${SPARED_STACK_WEB_PORT:-8080}/healthz, Postgres 127.0.0.1:${SPARED_STACK_PG_PORT:-55433}, registry 127.0.0.1:${SPARED_STACK_REGISTRY_PORT:-5000}"
}

cmd_down() {
    local volumes=()
    [[ "${1:-}" == "--volumes" ]] && volumes=(--volumes)
    command -v docker-compose >/dev/null 2>&1 || die "expected docker-compose, found none"
    compose --profile gpu down --remove-orphans "${volumes[@]}" >&2
}

case "${1:-}" in
    build) shift; cmd_build "$@" ;;
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    ps|logs|exec|config) compose "$@" ;;
    *) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
