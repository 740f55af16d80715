#!/usr/bin/env bash
# Crossport local build stack: Docker engine + BuildKit/buildx, a local OCI
# registry on 127.0.0.1:5000, QEMU binfmt handlers and offline multi-arch
# stand-in base images.
#
#   scripts/teststack.sh up        install (if needed) and start everything
#   scripts/teststack.sh down      stop registry and dockerd (keeps packages/data)
#   scripts/teststack.sh status    show what runs; exit 0 only if all is up
#   scripts/teststack.sh env       print the export lines the portal needs
#   scripts/teststack.sh selftest  multi-arch Go hello-world build + run
#
# Runs as root on Debian 12 (bookworm) or 13 (trixie) without systemd and
# without access to Docker Hub/GitHub: only the Debian archive is used.
# Every step is idempotent; a second `up` only checks and returns.
#
# Knobs (environment): TESTSTACK_RESEED=1 rebuilds the stand-in images even if the registry
# has them (or a list, TESTSTACK_RESEED="python:3.11 node:18-slim": those only);
# TESTSTACK_TIMEOUT (seconds, default 90) bounds waits.
set -euo pipefail

# Background services find their binaries in /usr/sbin even if the caller's
# PATH lacks it (dockerd, update-binfmts).
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH}"
export DEBIAN_FRONTEND=noninteractive
# Always talk to the engine this script manages, whatever the caller set.
export DOCKER_HOST=unix:///var/run/docker.sock
unset DOCKER_CONTEXT

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELPERS="$SCRIPT_DIR/teststack"

STATE_DIR=/var/lib/crossport-teststack   # registry data + download caches
LOG_DIR=/var/log/crossport-teststack     # dockerd.log, registry.log, seed-*.log
RUN_DIR=/run/crossport-teststack         # pid files of what this script started
REGISTRY_ADDR=127.0.0.1:5000
REGISTRY_URL="http://$REGISTRY_ADDR"
MIRROR=localhost:5000/library
PLATFORMS=linux/amd64,linux/arm64,linux/arm/v7
# One push, from BuildKit. `--push` on the containerd image store makes buildx 0.13 push every
# tag again through the engine, which PUTs each platform's manifest to the tag at once; the
# registry answers a HEAD racing those PUTs with 500 (see builds/buildx.py).
# gzip level 1: the stand-ins are pushed once and pulled over loopback, so export time (the
# golang layers are 1.2 GB unpacked) matters more than size.
PUSH=--output=type=image,push=true,compression=gzip,compression-level=1
# docker platform -> Debian architecture, in the order of PLATFORMS; the
# folder name in a seed context is TARGETARCH+TARGETVARIANT (amd64, arm64, armv7).
declare -A DEB_ARCH=([amd64]=amd64 [arm64]=arm64 [armv7]=armhf)
SEED_ARCHES=(amd64 arm64 armv7)
# name:tag of every stand-in image; status checks these. SEED_FUNC maps each to the
# function that builds it (default: seed_<name>).
SEED_IMAGES=(alpine:3.20 golang:1.19)
declare -A SEED_FUNC=()
# name:tag -> its lane (default: debs). Lanes seed at once; images that share a cache or a
# folder (.debs fetched per architecture, mmdebstrap's caches) share a lane.
declare -A SEED_LANE=()
TIMEOUT="${TESTSTACK_TIMEOUT:-90}"

# Messages go to stderr with the seconds since start, so slow phases show.
log() { printf '[teststack +%ss] %s\n' "$SECONDS" "$*" >&2; }
die() { printf '[teststack] ERROR: %s\n' "$*" >&2; exit 1; }

# wait_for SECONDS DESCRIPTION PIDFILE CMD...: poll CMD every 0.5 s until it
# succeeds; give up at the deadline or as soon as the daemon in PIDFILE died.
wait_for() {
    local secs=$1 what=$2 pidfile=$3; shift 3
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "$what: not ready after ${secs}s"
            return 1
        fi
        if ! pid_alive "$pidfile"; then
            log "$what: the process exited"
            return 1
        fi
        sleep 0.5
    done
    log "$what is ready"
}

# pid_alive PIDFILE: true if the file names a running process.
pid_alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# stop_pidfile PIDFILE NAME: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pidfile() {
    local file=$1 name=$2 pid
    if ! pid_alive "$file"; then
        log "$name is not running (no live pid in $file)"
        rm -f "$file"
        return 0
    fi
    pid=$(<"$file")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 60); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop in 30 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

# Start a long-running daemon fully detached (own session, no inherited fds),
# so `up` returns and the caller's job does not wait on its output.
# daemonize PIDFILE LOGFILE CMD...
daemonize() {
    local pidfile=$1 logfile=$2; shift 2
    mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
    printf '\n==== %s: %s\n' "$(date -Is)" "$*" >>"$logfile"
    setsid "$@" </dev/null >>"$logfile" 2>&1 &
    echo $! >"$pidfile"
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
}

os_codename() {
    # shellcheck disable=SC1091
    (. /etc/os-release && echo "${VERSION_CODENAME:-unknown}")
}

# The stack's parts, in the order `up` runs them: one file a part under scripts/teststack/lib/.
for part in packages engine registry qemu seeds; do
    # shellcheck source=/dev/null
    source "$HELPERS/lib/$part.sh"
done

# ---------------------------------------------------------------- commands

print_env() {
    cat <<EOF
export DOCKER_HOST=$DOCKER_HOST
export PORTAL_BASE_IMAGE_MIRROR=$MIRROR
export PORTAL_BUILD_NETWORK=host
export PORTAL_TEST_REGISTRY=localhost:5000
export PORTAL_TEST_PYPI=http://127.0.0.1:3141/simple/
export PORTAL_CHROMIUM=/usr/bin/chromium
export PORTAL_BINFMT_IMAGE=$MIRROR/binfmt:latest
export PORTAL_BUILDKIT_IMAGE=$MIRROR/buildkit:$BUILDKIT_VERSION
export PORTAL_TEST_AUTH_REGISTRY=$AUTH_ADDR
export PORTAL_TEST_AUTH_USER=$AUTH_USER
export PORTAL_TEST_AUTH_PASSWORD_FILE=$AUTH_DIR/password
export PORTAL_BUILDKIT_REGISTRY_CA=$AUTH_ADDR=$AUTH_DIR/ca.crt
# The portal may contact the stack's own registries, nothing else on this machine.
export PORTAL_OUTBOUND_ALLOW=localhost:5000,$AUTH_ADDR
EOF
}

cmd_up() {
    need_root
    local t0=$SECONDS
    mkdir -p "$STATE_DIR" "$LOG_DIR" "$RUN_DIR"
    install_packages
    # Emulators first: BuildKit probes which platforms it can run once, when dockerd starts,
    # and a node would not list linux/arm/v7 if the handler came later.
    setup_qemu
    start_dockerd
    check_buildx
    start_registry
    start_auth_registry
    seed_images
    log "up: done in $((SECONDS - t0)) s"
    summary
}

summary() {
    local image
    echo "Crossport test stack is up"
    echo "  engine:   $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}' 2>/dev/null) ($(command -v docker))"
    echo "  buildx:   $(docker buildx version 2>/dev/null)"
    echo "  registry: $REGISTRY_URL (data $STATE_DIR/registry)"
    echo "  qemu:     aarch64 [$(binfmt_flags qemu-aarch64)] arm [$(binfmt_flags qemu-arm)]"
    for image in "${SEED_IMAGES[@]}"; do
        echo "  image:    $MIRROR/$image ($PLATFORMS)"
    done
    echo "  logs:     $LOG_DIR"
    echo "  env:      eval \"\$($0 env)\""
}

cmd_down() {
    need_root
    stop_pidfile "$RUN_DIR/registry.pid" registry
    stop_pidfile "$RUN_DIR/auth-registry.pid" "auth registry"
    stop_dockerd
    # Nothing else to stop: dockerd's managed containerd exits with dockerd.
}

cmd_status() {
    local ok=0 image name flags
    if docker_up; then
        echo "dockerd:  running (server $(docker version --format '{{.Server.Version}}' 2>/dev/null), $(pid_alive "$RUN_DIR/dockerd.pid" && echo "pid $(<"$RUN_DIR/dockerd.pid")" || echo "not started by teststack"))"
    else
        echo "dockerd:  NOT running"; ok=1
    fi
    if docker buildx version >/dev/null 2>&1; then
        echo "buildx:   $(docker buildx version)"
    else
        echo "buildx:   NOT available"; ok=1
    fi
    if auth_registry_up; then
        echo "auth registry: running on $AUTH_ADDR (TLS, htpasswd user $AUTH_USER)"
    else
        echo "auth registry: NOT running"; ok=1
    fi
    if registry_up; then
        echo "registry: running on $REGISTRY_ADDR ($(pid_alive "$RUN_DIR/registry.pid" && echo "pid $(<"$RUN_DIR/registry.pid")" || echo "not started by teststack"))"
    else
        echo "registry: NOT running"; ok=1
    fi
    for name in qemu-aarch64 qemu-arm; do
        flags=$(binfmt_flags "$name")
        if [[ $flags == *F* ]]; then
            echo "binfmt:   $name flags $flags"
        else
            echo "binfmt:   $name NOT ready (flags '${flags}')"; ok=1
        fi
    done
    for image in "${SEED_IMAGES[@]}"; do
        if ! registry_up; then
            echo "image:    $MIRROR/$image unknown (registry down)"; ok=1
        elif seed_present "$image"; then
            echo "image:    $MIRROR/$image present"
        else
            echo "image:    $MIRROR/$image MISSING"; ok=1
        fi
    done
    return $ok
}

# Multi-arch cross-compiling Go build from the stand-ins, pushed to the local
# registry and run on every platform. Proves the whole stack end to end.
cmd_selftest() {
    local dir out rc=0 p expect
    mkdir -p "$LOG_DIR"
    dir=$(mktemp -d)
    cp "$HELPERS/hello/"* "$dir/"
    log "selftest: building localhost:5000/test/hello:latest for $PLATFORMS"
    if ! docker buildx build --builder default --network host --no-cache \
            --platform "$PLATFORMS" "$PUSH" --progress=plain \
            -t localhost:5000/test/hello:latest "$dir" >"$LOG_DIR/selftest.log" 2>&1; then
        tail -n 30 "$LOG_DIR/selftest.log" >&2
        die "selftest build failed; see $LOG_DIR/selftest.log"
    fi
    rm -rf "$dir"
    for p in linux/amd64 linux/arm64 linux/arm/v7; do
        expect="Hello from linux/$(cut -d/ -f2 <<<"$p")"
        # --pull always: the run must use the image just pushed, not a stale
        # local copy; pull progress goes to the log, not into $out.
        out=$(docker run --rm --pull always --network none --platform "$p" \
            localhost:5000/test/hello:latest 2>>"$LOG_DIR/selftest.log") || true
        if [[ ${out%%$'\n'*} == "$expect" ]]; then
            echo "selftest: $p ok: ${out//$'\n'/ | }"
        else
            echo "selftest: $p FAILED (got '$out', want '$expect')"; rc=1
        fi
    done
    return $rc
}

usage() {
    sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) print_env ;;
    selftest) cmd_selftest ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
