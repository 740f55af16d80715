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
# Knobs (environment): TESTSTACK_RESEED=1 rebuilds the stand-in images even if
# the registry has them; TESTSTACK_TIMEOUT (seconds, default 90) bounds waits.
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
PUSH=--output=type=image,push=
# docker platform -> Debian architecture, in the order of PLATFORMS; the
# folder name in a seed context is TARGETARCH+TARGETVARIANT (amd64, arm64, armv7).
declare -A DEB_ARCH=([amd64]=amd64 [arm64]=arm64 [armv7]=armhf)
SEED_ARCHES=(amd64 arm64 armv7)
# name:tag of every stand-in image; status checks these. SEED_FUNC maps each to the
# function that builds it (default: seed_<name>).
SEED_IMAGES=(alpine:3.20 golang:1.19)
declare -A SEED_FUNC=()
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

# ---------------------------------------------------------------- 1. packages

# Packages from the default suite. jq merges daemon.json; xz-utils lets docker
# handle .tar.xz contexts; fonts-liberation gives chromium legible text in
# screenshots (we skip Recommends, which would drag in far more).
BASE_PACKAGES=(docker-registry qemu-user-static binfmt-support chromium fonts-liberation
    apache2-utils git ca-certificates curl busybox-static jq xz-utils openssh-server
    mmdebstrap arch-test)  # debian_rootfs; arch-test is mmdebstrap's foreign-arch check
# Packages that must be new enough for multi-platform builds (containerd image
# store): docker.io >= 26 and buildx. On bookworm they come from trixie.
DOCKER_PACKAGES=(docker.io docker-buildx docker-cli)

# apt_update_retry APT-COMMAND: `update`, retried: a mirror caught mid-sync
# ("File has unexpected size") is a transient error, seen here.
apt_update_retry() {
    local try
    for try in 1 2 3; do
        "$1" -q -o DPkg::Lock::Timeout=120 update && return 0
        echo "apt update attempt $try failed" >&2
        sleep $((try * 5))
    done
    return 1
}

pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

docker_pkg_ok() {
    local v
    pkg_installed docker.io && pkg_installed docker-buildx && pkg_installed docker-cli || return 1
    v=$(dpkg-query -W -f='${Version}' docker.io)
    dpkg --compare-versions "$v" ge 26
}

# Add trixie with priority 100 so nothing else is upgraded from it by accident;
# only the packages we name as pkg/trixie come from there.
add_trixie_suite() {
    local changed=1
    if [[ ! -f /etc/apt/sources.list.d/trixie.sources ]]; then
        cat >/etc/apt/sources.list.d/trixie.sources <<'EOF'
# Added by Crossport scripts/teststack.sh: docker.io/docker-buildx >= 26 only.
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        changed=0
    fi
    if [[ ! -f /etc/apt/preferences.d/trixie-low ]]; then
        cat >/etc/apt/preferences.d/trixie-low <<'EOF'
# Added by Crossport scripts/teststack.sh: never prefer trixie unless asked.
Package: *
Pin: release n=trixie
Pin-Priority: 100
EOF
        changed=0
    fi
    return $changed
}

install_packages() {
    local codename missing=() docker_spec=()
    codename=$(os_codename)
    for p in "${BASE_PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if ! docker_pkg_ok; then
        if [[ $codename == bookworm ]]; then
            add_trixie_suite || true
            docker_spec=(docker.io/trixie docker-buildx/trixie docker-cli/trixie)
        else
            docker_spec=("${DOCKER_PACKAGES[@]}")
        fi
    fi
    if ((${#missing[@]} == 0 && ${#docker_spec[@]} == 0)); then
        log "packages: all present (skipping apt)"
        return 0
    fi
    log "packages: installing ${missing[*]} ${docker_spec[*]} (Debian $codename)"
    # Without systemd, maintainer scripts would start docker and
    # docker-registry from /etc/init.d (the latter on port 5000 with its own
    # storage). policy-rc.d = 101 forbids that; this script starts them itself.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary, from Crossport scripts/teststack.sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt_update_retry apt-get >>"$LOG_DIR/apt.log" 2>&1 ||
        log "warning: apt-get update reported errors (see $LOG_DIR/apt.log); trying the install anyway"
    if ! apt-get install -y -q -o DPkg::Lock::Timeout=120 --no-install-recommends \
            "${missing[@]}" "${docker_spec[@]}" \
            >>"$LOG_DIR/apt.log" 2>&1; then
        tail -n 30 "$LOG_DIR/apt.log" >&2
        die "apt-get install failed; see $LOG_DIR/apt.log"
    fi
    if grep -q 'Crossport scripts/teststack.sh' /usr/sbin/policy-rc.d 2>/dev/null; then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
    docker_pkg_ok || die "docker.io >= 26 with docker-buildx is still not installed"
}

# ---------------------------------------------------------------- 2. dockerd

DAEMON_JSON=/etc/docker/daemon.json
DAEMON_SETTINGS='{"features": {"containerd-snapshotter": true}, "bridge": "none", "iptables": false, "ip6tables": false}'

# Merge our settings into daemon.json (keeping anything else). Returns 0 if
# the file changed.
write_daemon_json() {
    local current merged
    mkdir -p /etc/docker
    current='{}'
    if [[ -s $DAEMON_JSON ]]; then
        current=$(jq -c . "$DAEMON_JSON") || die "$DAEMON_JSON is not valid JSON"
    fi
    merged=$(jq -n --argjson a "$current" --argjson b "$DAEMON_SETTINGS" '$a * $b')
    if [[ -s $DAEMON_JSON ]] && [[ $(jq -S . <<<"$current") == $(jq -S . <<<"$merged") ]]; then
        return 1
    fi
    jq . <<<"$merged" >"$DAEMON_JSON.tmp" && mv "$DAEMON_JSON.tmp" "$DAEMON_JSON"
    log "wrote $DAEMON_JSON"
    return 0
}

docker_up() { docker info >/dev/null 2>&1; }

start_dockerd() {
    local changed=1
    write_daemon_json && changed=0
    if docker_up; then
        if ((changed == 0)); then
            if pid_alive "$RUN_DIR/dockerd.pid"; then
                log "daemon.json changed: restarting dockerd"
                stop_dockerd
            else
                die "daemon.json changed but dockerd was not started by this script; restart it yourself"
            fi
        else
            log "dockerd: already running"
            return 0
        fi
    fi
    # A stale pid file from a killed dockerd makes the next one refuse to start.
    if [[ -f /var/run/docker.pid ]] && ! pid_alive /var/run/docker.pid; then
        rm -f /var/run/docker.pid
    fi
    # dockerd runs its own managed containerd (under /var/run/docker/containerd)
    # when no system containerd listens on /run/containerd/containerd.sock;
    # Debian's containerd package is installed but, without systemd, not
    # started, so the managed one is used and stops together with dockerd.
    log "dockerd: starting (log: $LOG_DIR/dockerd.log)"
    daemonize "$RUN_DIR/dockerd.pid" "$LOG_DIR/dockerd.log" /usr/sbin/dockerd
    if ! wait_for "$TIMEOUT" "dockerd" "$RUN_DIR/dockerd.pid" docker_up; then
        tail -n 30 "$LOG_DIR/dockerd.log" >&2
        die "dockerd did not answer 'docker info' within ${TIMEOUT}s; see $LOG_DIR/dockerd.log"
    fi
    [[ $(docker info --format '{{.Driver}}') == overlayfs ]] ||
        log "warning: storage driver is $(docker info --format '{{.Driver}}'), expected the containerd snapshotter (overlayfs)"
}

stop_dockerd() {
    if pid_alive "$RUN_DIR/dockerd.pid"; then
        stop_pidfile "$RUN_DIR/dockerd.pid" dockerd
    elif docker_up; then
        log "dockerd is running but was not started by this script; leaving it"
    else
        log "dockerd is not running"
        rm -f "$RUN_DIR/dockerd.pid"
    fi
}

check_buildx() {
    docker buildx version >/dev/null 2>&1 ||
        die "'docker buildx version' fails: is docker-buildx in /usr/libexec/docker/cli-plugins?"
}

# ---------------------------------------------------------------- 3. registry

REGISTRY_CONFIG="$STATE_DIR/registry.yml"

registry_up() { curl -fs -o /dev/null "$REGISTRY_URL/v2/"; }

start_registry() {
    mkdir -p "$STATE_DIR/registry"
    cat >"$REGISTRY_CONFIG.tmp" <<EOF
# Generated by scripts/teststack.sh; rewritten on every 'up'.
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    mv "$REGISTRY_CONFIG.tmp" "$REGISTRY_CONFIG"
    serve_registry registry "$REGISTRY_CONFIG" registry_up "$REGISTRY_URL"
}

# serve_registry NAME CONFIG CHECK WHERE: run docker-registry with CONFIG (pid and log named
# NAME) unless CHECK already passes; wait until CHECK passes.
serve_registry() {
    local name=$1 config=$2 check=$3 where=$4
    if "$check"; then
        pid_alive "$RUN_DIR/$name.pid" ||
            log "warning: something not started by this script already serves $where; using it"
        log "$name: already running"
        return 0
    fi
    log "$name: starting on $where (log: $LOG_DIR/$name.log)"
    daemonize "$RUN_DIR/$name.pid" "$LOG_DIR/$name.log" /usr/bin/docker-registry serve "$config"
    if ! wait_for "$TIMEOUT" "$name" "$RUN_DIR/$name.pid" "$check"; then
        tail -n 20 "$LOG_DIR/$name.log" >&2
        die "$name did not answer on $where (port taken?); see $LOG_DIR/$name.log"
    fi
}

# A second registry for registry logins: htpasswd auth and TLS, with a certificate from a CA
# made here that the engine (/etc/docker/certs.d) and the system store (for the buildx CLI)
# trust. The password is random, made once, kept root-only in $AUTH_DIR/password.
# It is reached by a name that /etc/hosts maps to 127.0.0.1: engines treat a registry at a
# loopback address as insecure (no certificate check, then plain HTTP), which would hide the
# TLS and turn a refused login into "400 Bad Request".
AUTH_NAME=crossport-registry.test
AUTH_PORT=5443
AUTH_ADDR=$AUTH_NAME:$AUTH_PORT
AUTH_USER=crossport
AUTH_DIR="$STATE_DIR/auth-registry"

auth_registry_up() {
    curl -s -o /dev/null -w '%{http_code}' --cacert "$AUTH_DIR/ca.crt" \
        --resolve "$AUTH_ADDR:127.0.0.1" "https://$AUTH_ADDR/v2/" |
        grep -q 401
}

auth_registry_files() {
    mkdir -p "$AUTH_DIR/data"
    chmod 700 "$AUTH_DIR"
    grep -q "^127.0.0.1 $AUTH_NAME\$" /etc/hosts || echo "127.0.0.1 $AUTH_NAME" >>/etc/hosts
    # (Strict X.509 checks, as Python 3.13 makes by default, want the CA's key usage.)
    if [[ ! -s $AUTH_DIR/ca.crt ]] ||
        ! openssl x509 -in "$AUTH_DIR/ca.crt" -noout -ext keyUsage 2>/dev/null | grep -q "Certificate Sign" ||
        ! openssl x509 -in "$AUTH_DIR/server.crt" -noout -ext subjectAltName 2>/dev/null |
        grep -q "DNS:$AUTH_NAME"; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
            -subj "/CN=crossport teststack CA" -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$AUTH_DIR/ca.key" -out "$AUTH_DIR/ca.crt" \
            2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
            -keyout "$AUTH_DIR/server.key" -out "$AUTH_DIR/server.csr" 2>/dev/null
        printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n' "$AUTH_NAME" \
            >"$AUTH_DIR/server.ext"
        openssl x509 -req -in "$AUTH_DIR/server.csr" -CA "$AUTH_DIR/ca.crt" -CAkey "$AUTH_DIR/ca.key" \
            -CAcreateserial -days 3650 -extfile "$AUTH_DIR/server.ext" -out "$AUTH_DIR/server.crt" \
            2>/dev/null
    fi
    if [[ ! -s $AUTH_DIR/password ]]; then
        (umask 077 && openssl rand -hex 16 >"$AUTH_DIR/password")
    fi
    htpasswd -Bbc "$AUTH_DIR/htpasswd" "$AUTH_USER" "$(<"$AUTH_DIR/password")" 2>/dev/null
    # Trust: the engine reads certs.d per connection; the CLI (imagetools) uses the system store.
    mkdir -p "/etc/docker/certs.d/$AUTH_ADDR"
    cp "$AUTH_DIR/ca.crt" "/etc/docker/certs.d/$AUTH_ADDR/ca.crt"
    if ! cmp -s "$AUTH_DIR/ca.crt" /usr/local/share/ca-certificates/crossport-teststack.crt; then
        cp "$AUTH_DIR/ca.crt" /usr/local/share/ca-certificates/crossport-teststack.crt
        update-ca-certificates >/dev/null 2>&1
    fi
}

start_auth_registry() {
    auth_registry_files
    cat >"$AUTH_DIR/registry.yml" <<EOF
# Generated by scripts/teststack.sh; rewritten on every 'up'.
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $AUTH_DIR/data
http:
  addr: 127.0.0.1:$AUTH_PORT
  tls:
    certificate: $AUTH_DIR/server.crt
    key: $AUTH_DIR/server.key
auth:
  htpasswd:
    realm: crossport-teststack
    path: $AUTH_DIR/htpasswd
EOF
    serve_registry auth-registry "$AUTH_DIR/registry.yml" auth_registry_up \
        "https://$AUTH_ADDR (127.0.0.1:$AUTH_PORT, TLS and htpasswd)"
}

# ---------------------------------------------------------------- 4. QEMU

BINFMT=/proc/sys/fs/binfmt_misc

# "7f454c46" -> "\x7f\x45\x4c\x46", the form the register file expects.
hex_escape() {
    local h=$1 out=
    while [[ -n $h ]]; do
        out+="\\x${h:0:2}"
        h=${h:2}
    done
    printf '%s' "$out"
}

binfmt_flags() { sed -n 's/^flags: //p' "$BINFMT/$1" 2>/dev/null; }

# Without F (fix-binary) the kernel looks the interpreter up inside the
# container's root, where it does not exist ("Could not open
# '/lib/ld-linux-aarch64.so.1'"). Depending on the qemu-user-static version,
# Debian registers handlers with flags "P" or "PF" and an interpreter under
# /usr/libexec/qemu-binfmt. Re-register them all the same way: F (open the
# static interpreter now), P (preserve argv[0]; qemu reads that from AT_FLAGS)
# and C (credentials from the binary, for setuid programs), interpreter
# /usr/bin/qemu-*-static.
binfmt_field() { sed -n "s/^$2 //p" "$BINFMT/$1" 2>/dev/null; }

# The statically linked qemu for handler NAME: Debian 12 names it
# /usr/bin/qemu-aarch64-static; Debian 13's qemu-user is static already and
# its handlers point (via /usr/libexec/qemu-binfmt) to /usr/bin/qemu-aarch64.
static_interp() {
    if [[ -x /usr/bin/$1-static ]]; then
        echo "/usr/bin/$1-static"
    else
        readlink -f "$(binfmt_field "$1" interpreter)"
    fi
}

reregister_fpc() {
    local name=$1 offset magic mask static
    offset=$(binfmt_field "$name" offset)
    magic=$(binfmt_field "$name" magic)
    mask=$(binfmt_field "$name" mask)
    static=$(static_interp "$name")
    [[ -n $magic ]] || { log "warning: $name is not a magic-type handler; leaving it"; return 0; }
    [[ -x $static ]] || { log "warning: no static qemu for $name; leaving it"; return 0; }
    magic=$(hex_escape "$magic")
    mask=$(hex_escape "$mask")
    echo -1 >"$BINFMT/$name"
    printf ':%s:M:%s:%s:%s:%s:FPC' "$name" "${offset:-0}" "$magic" "$mask" "$static" >"$BINFMT/register"
}

setup_qemu() {
    if [[ ! -e $BINFMT/register ]]; then
        mount -t binfmt_misc binfmt_misc "$BINFMT" || die "cannot mount binfmt_misc"
    fi
    # Registers every handler binfmt-support knows (Debian 12's
    # qemu-user-static among them) that the kernel lacks; enabled ones stay.
    update-binfmts --enable >>"$LOG_DIR/binfmt.log" 2>&1 || true
    # Debian 13's qemu-user-binfmt ships only systemd binfmt.d files, which
    # nothing reads without systemd: register what the kernel still lacks.
    local conf line f name flags
    for conf in /usr/lib/binfmt.d/qemu-*.conf; do
        [[ -e $conf ]] || continue
        while IFS= read -r line; do
            [[ $line == :* ]] || continue
            name=$(cut -d: -f2 <<<"$line")
            [[ -e $BINFMT/$name ]] && continue
            printf '%s' "$line" >"$BINFMT/register" 2>/dev/null ||
                log "warning: could not register $name from $conf"
        done <"$conf"
    done
    for f in "$BINFMT"/qemu-*; do
        [[ -e $f ]] || continue
        name=${f##*/}
        flags=$(binfmt_flags "$name")
        if [[ $flags != *F* || $flags != *C* ||
            $(binfmt_field "$name" interpreter) != "$(static_interp "$name")" ]]; then
            reregister_fpc "$name"
        fi
    done
    for name in qemu-aarch64 qemu-arm; do
        [[ $(binfmt_flags "$name") == *F* ]] ||
            die "binfmt handler $name is missing or lacks the F flag (flags: '$(binfmt_flags "$name")')"
    done
    log "qemu: qemu-aarch64 flags $(binfmt_flags qemu-aarch64), qemu-arm flags $(binfmt_flags qemu-arm)"
}

# ---------------------------------------------------------------- 5. seeds

APT_DIR="$STATE_DIR/apt"          # private apt state for foreign-arch downloads
DEB_CACHE="$STATE_DIR/debs"       # downloaded .deb files, per Debian arch
SEED_DIR="$STATE_DIR/seed"        # build contexts (recreated when seeding)

# A private apt configuration that knows only bookworm main (no -security or
# -updates: fewer index files that can be caught mid-sync, and a stand-in
# needs no security fixes) for amd64/arm64/armhf.
# It never touches dpkg's architecture list or the host's apt state, so it
# works the same on bookworm and trixie hosts and the stand-ins stay bookworm.
private_apt_config() {
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/empty.d"
    rm -f "$APT_DIR"/updated.*
    : >"$APT_DIR/status"
    cat >"$APT_DIR/sources.list" <<'EOF'
deb [arch=amd64,arm64,armhf signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
EOF
    cat >"$APT_DIR/apt.conf" <<EOF
Dir::Etc::SourceList "$APT_DIR/sources.list";
Dir::Etc::SourceParts "$APT_DIR/empty.d";
Dir::Etc::Preferences "$APT_DIR/empty.d/none";
Dir::Etc::PreferencesParts "$APT_DIR/empty.d";
Dir::State::Lists "$APT_DIR/lists";
Dir::State::status "$APT_DIR/status";
Dir::Cache "$APT_DIR/cache";
APT::Architecture "amd64";
APT::Architectures { "amd64"; "arm64"; "armhf"; };
APT::Sandbox::User "root";
EOF
}

papt() { APT_CONFIG="$APT_DIR/apt.conf" apt-get -q "$@"; }

# fetch_deb PKG ARCH -> prints the path of PKG_*_ARCH.deb, downloading it
# into the cache unless a copy is there already.
fetch_deb() {
    local pkg=$1 arch=$2 dir="$DEB_CACHE/$2" f
    mkdir -p "$dir"
    f=$(compgen -G "$dir/${pkg}_*.deb" | head -n1 || true)
    # A download cut short leaves a broken file: drop it and fetch again.
    if [[ -n $f ]] && ! dpkg-deb -I "$f" >/dev/null 2>&1; then
        rm -f "$f"
        f=
    fi
    if [[ -z $f ]]; then
        # fetch_deb runs in $(...) subshells: remember the update in a file
        # named after this run's pid ($$ is the same in subshells).
        if [[ ! -e $APT_DIR/updated.$$ ]]; then
            log "seed: updating private apt lists (bookworm amd64/arm64/armhf)"
            apt_update_retry papt >>"$LOG_DIR/seed-apt.log" 2>&1 ||
                log "warning: private apt update reported errors (see $LOG_DIR/seed-apt.log); trying anyway"
            : >"$APT_DIR/updated.$$"
        fi
        local spec="$pkg:$arch"
        [[ $arch == all ]] && spec=$pkg
        (cd "$dir" && papt download "$spec") >>"$LOG_DIR/seed-apt.log" 2>&1 ||
            die "cannot download $spec; see $LOG_DIR/seed-apt.log"
        f=$(compgen -G "$dir/${pkg}_*.deb" | head -n1)
    fi
    printf '%s\n' "$f"
}

# unpack PKG ARCH DESTDIR
unpack() {
    local deb
    deb=$(fetch_deb "$1" "$2")
    dpkg-deb -x "$deb" "$3"
}

# Files every stand-in root gets: /etc/passwd, /etc/group, CA bundle, /tmp, /root.
common_root() {
    local root=$1
    mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/root" "$root/var/tmp"
    cp "$HELPERS/rootfs/etc/passwd" "$HELPERS/rootfs/etc/group" \
        "$HELPERS/rootfs/etc/nsswitch.conf" "$root/etc/"
    if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
        cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
    fi
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 700 "$root/root"
}

# Busybox root for one architecture: /bin/busybox plus one symlink per applet.
# The applet list comes from the amd64 binary (runs natively here); Debian
# builds every architecture with the same configuration.
busybox_root() {
    local arch=$1 root=$2 tmp
    tmp=$(mktemp -d)
    unpack busybox-static "${DEB_ARCH[$arch]}" "$tmp"
    mkdir -p "$root/bin"
    install -m 755 "$tmp/bin/busybox" "$root/bin/busybox"
    rm -rf "$tmp"
}

# debian_rootfs ARCH OUT.tar INCLUDES LOGNAME [MMDEBSTRAP ARGS...]: a bookworm root
# filesystem (apt variant) with INCLUDES, as a tar (keeps owners, modes and links exactly; a
# Dockerfile ADDs it). Foreign maintainer scripts run under QEMU. No docs, man pages or
# translations, like the official slim images; downloaded .debs are kept per architecture
# in $DEB_CACHE/mmdebstrap-<debian arch>. Extra arguments (hooks) go to mmdebstrap.
debian_rootfs() {
    local arch=$1 out=$2 include=$3 logfile="$LOG_DIR/seed-$4-mmdebstrap.log" deb_arch cache
    shift 4
    deb_arch=${DEB_ARCH[$arch]}
    cache="$DEB_CACHE/mmdebstrap-$deb_arch"
    mkdir -p "$cache"
    log "seed: mmdebstrap $deb_arch ($include; log: $logfile)"
    if ! mmdebstrap --variant=apt --arch="$deb_arch" --include="$include" \
            --skip=essential/unlink \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --setup-hook="mkdir -p \"\$1/var/cache/apt/archives/\"" \
            --setup-hook="sync-in $cache /var/cache/apt/archives/" \
            --customize-hook="sync-out /var/cache/apt/archives $cache" \
            "$@" bookworm "$out" \
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" \
            >>"$logfile" 2>&1; then
        tail -n 30 "$logfile" >&2
        die "mmdebstrap for $deb_arch failed; see $logfile"
    fi
}

busybox_links() {
    local root=$1 list=$2 applet
    while read -r applet; do
        if [[ -n $applet && $applet != busybox && ! -e $root/bin/$applet ]]; then
            ln -s /bin/busybox "$root/bin/$applet"
        fi
    done <"$list"
}

seed_present() {
    local name=${1%%:*} tag=${1#*:}
    curl -fs -o /dev/null \
        -H 'Accept: application/vnd.oci.image.index.v1+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
        "$REGISTRY_URL/v2/library/$name/manifests/$tag"
}

# build_seed NAME:TAG CONTEXT [BUILD ARGS...]: one multi-platform build+push.
build_seed() {
    local image=$1 ctx=$2; shift 2
    local name=${image%%:*}
    log "seed: building and pushing $MIRROR/$image for $PLATFORMS (log: $LOG_DIR/seed-$name.log)"
    if ! docker buildx build --builder default --network host \
            --platform "$PLATFORMS" "$PUSH" --progress=plain \
            -f "$HELPERS/$name/Dockerfile" -t "$MIRROR/$image" "$@" "$ctx" \
            >"$LOG_DIR/seed-$name.log" 2>&1; then
        tail -n 30 "$LOG_DIR/seed-$name.log" >&2
        die "building $MIRROR/$image failed; see $LOG_DIR/seed-$name.log"
    fi
}

seed_alpine() {
    local ctx="$SEED_DIR/alpine" arch
    log "seed: preparing the alpine stand-in root filesystems"
    rm -rf "$ctx"
    mkdir -p "$ctx"
    common_root "$ctx/common"
    for arch in "${SEED_ARCHES[@]}"; do
        busybox_root "$arch" "$ctx/$arch"
    done
    "$ctx/amd64/bin/busybox" --list >"$SEED_DIR/busybox.applets"
    for arch in "${SEED_ARCHES[@]}"; do
        busybox_links "$ctx/$arch" "$SEED_DIR/busybox.applets"
    done
    build_seed alpine:3.20 "$ctx"
    rm -rf "$ctx"
}

seed_golang() {
    local ctx="$SEED_DIR/golang" arch deb_arch pkg src_deb version
    log "seed: preparing the golang stand-in root filesystems (~200 MB of .debs on the first run)"
    rm -rf "$ctx"
    mkdir -p "$ctx"
    common_root "$ctx/common"
    # Same GOPATH layout and permissions as the official image.
    mkdir -p "$ctx/common/go/src" "$ctx/common/go/bin"
    chmod -R 1777 "$ctx/common/go"
    unpack golang-1.19-src all "$ctx/common"
    src_deb=$(fetch_deb golang-1.19-src all)
    version=$(dpkg-deb -f "$src_deb" Version)
    version=${version%%-*}
    for arch in "${SEED_ARCHES[@]}"; do
        deb_arch=${DEB_ARCH[$arch]}
        busybox_root "$arch" "$ctx/$arch"
        # cmd/go is linked against glibc; libgcc-s1 is what glibc dlopens for
        # thread cancellation. amd64's libc6 keeps the loader in /lib64.
        for pkg in libc6 libgcc-s1 golang-1.19-go; do
            unpack "$pkg" "$deb_arch" "$ctx/$arch"
        done
        # Docs only; /usr/share/go-1.19 stays (GOROOT/src links into it).
        rm -rf "$ctx/$arch/usr/share/doc" "$ctx/$arch/usr/share/lintian" "$ctx/$arch/usr/share/man"
    done
    "$ctx/amd64/bin/busybox" --list >"$SEED_DIR/busybox.applets"
    for arch in "${SEED_ARCHES[@]}"; do
        busybox_links "$ctx/$arch" "$SEED_DIR/busybox.applets"
    done
    rm -rf "$ctx/common/usr/share/doc" "$ctx/common/usr/share/lintian"
    build_seed golang:1.19 "$ctx" --build-arg "GOLANG_VERSION=$version"
    rm -rf "$ctx"   # 1.2 GB unpacked; the .deb cache is enough for a rerun
}

seed_images() {
    local image todo=()
    for image in "${SEED_IMAGES[@]}"; do
        if [[ ${TESTSTACK_RESEED:-0} != 1 ]] && seed_present "$image"; then
            log "seed: $MIRROR/$image already in the registry"
        else
            todo+=("$image")
        fi
    done
    ((${#todo[@]})) || return 0
    private_apt_config
    for image in "${todo[@]}"; do
        "${SEED_FUNC[$image]:-seed_${image%%:*}}"
    done
}

# More stand-ins: each scripts/teststack/seeds/*.sh appends to SEED_IMAGES, sets SEED_FUNC
# and defines its seed function with the helpers above (papt download, busybox_links,
# build_seed ...). One file per image family keeps this script readable.
for seed_file in "$HELPERS"/seeds/*.sh; do
    [[ -e $seed_file ]] || continue
    # shellcheck source=/dev/null
    source "$seed_file"
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
export PORTAL_TEST_AUTH_REGISTRY=$AUTH_ADDR
export PORTAL_TEST_AUTH_USER=$AUTH_USER
export PORTAL_TEST_AUTH_PASSWORD_FILE=$AUTH_DIR/password
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
