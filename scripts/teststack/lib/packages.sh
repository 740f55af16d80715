# Sourced by scripts/teststack.sh: 1. the Debian packages (docker.io and buildx from trixie on bookworm)

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

# debian_mirror: the Debian archive this machine's apt already uses (the first URIs of its
# .sources files, else the first `deb` line; -security archives skipped), never a host written
# here: a closed network has its own mirror.
debian_mirror() {
    local uri
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v -- '-security' | head -n1 || true)
    if [[ -z $uri ]]; then
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            grep -v -- '-security' | head -n1 || true)
    fi
    [[ -n $uri ]] || die "no Debian mirror in this machine's apt sources (/etc/apt/sources.list*)"
    echo "${uri%/}"
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
        cat >/etc/apt/sources.list.d/trixie.sources <<EOF
# Added by Crossport scripts/teststack.sh: docker.io/docker-buildx >= 26 only.
Types: deb
URIs: $(debian_mirror)
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
    # Compose v2 (the `docker compose` plugin, for tests/e2e/test_compose.py): Debian 13's
    # docker-compose; bookworm's is the old Python v1.
    if ! docker compose version >/dev/null 2>&1; then
        if [[ $codename == bookworm ]]; then
            add_trixie_suite || true
            docker_spec+=(docker-compose/trixie)
        else
            docker_spec+=(docker-compose)
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
