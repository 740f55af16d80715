# shellcheck shell=bash
# Variables and helpers come from scripts/teststack.sh.
# shellcheck disable=SC2034,SC2153
# Stand-ins for the services deploy/compose.yaml runs beside Crossport, sourced by
# scripts/teststack.sh (tests/e2e/test_compose.py brings the file up with them):
#
#   localhost:5000/library/postgres:17  Debian trixie's postgresql-17, with an entry point
#                                       that honours POSTGRES_USER, POSTGRES_PASSWORD(_FILE) and POSTGRES_DB
#   localhost:5000/library/redis:8      Debian trixie's redis-server
#
# linux/amd64 only: the compose test runs them on this machine's engine.

SEED_IMAGES+=(postgres:17 redis:8)
SEED_FUNC["postgres:17"]=seed_postgres
SEED_FUNC["redis:8"]=seed_redis
SEED_LANE["postgres:17"]=services
SEED_LANE["redis:8"]=services

# seed_service NAME:TAG INCLUDES [MMDEBSTRAP ARGS...]: a trixie root of INCLUDES for amd64 and
# the Dockerfile (and any other files) of scripts/teststack/NAME, built and pushed.
seed_service() {
    local image=$1 include=$2 ctx name=${1%%:*}
    shift 2
    # Only this machine's platform (the callees read these).
    local -a SEED_ARCHES=(amd64)
    local PLATFORMS=linux/amd64
    mkdir -p "$SEED_DIR"
    ctx=$(mktemp -d "$SEED_DIR/$name.XXXXXX")
    ROOTFS_SUITE=trixie debian_rootfs_all "$ctx" "$include" "$name" "$@"
    cp -r "$HELPERS/$name/." "$ctx/"
    build_seed "$image" "$ctx"
    rm -rf "$ctx"
}

seed_postgres() {
    # The postgres user and group, which postgresql-common's maintainer script would add.
    seed_service postgres:17 postgresql-17 \
        --extract-hook='echo "postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh" >>"$1/etc/passwd"; echo "postgres:x:999:" >>"$1/etc/group"'
}

seed_redis() {
    seed_service redis:8 redis-server,redis-tools
}
