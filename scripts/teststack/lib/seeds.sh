# Sourced by scripts/teststack.sh: 5. the offline stand-in base images

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
    cat >"$APT_DIR/sources.list" <<EOF
deb [arch=amd64,arm64,armhf signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) bookworm main
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

# private_lists: the private apt lists, updated once per `up`. Callers run in $(...) subshells
# too: the update is remembered in a file named after this run's pid ($$ is the same there).
private_lists() {
    [[ ! -e $APT_DIR/updated.$$ ]] || return 0
    log "seed: updating private apt lists (bookworm amd64/arm64/armhf)"
    apt_update_retry papt >>"$LOG_DIR/seed-apt.log" 2>&1 ||
        log "warning: private apt update reported errors (see $LOG_DIR/seed-apt.log); trying anyway"
    : >"$APT_DIR/updated.$$"
}

# essential_packages DEB_ARCH: the Essential: yes packages of bookworm for DEB_ARCH, comma
# separated (what mmdebstrap's essential variant would install), read from the private lists.
essential_packages() {
    local list
    private_lists
    list=$(compgen -G "$APT_DIR/lists/*_bookworm_main_binary-$1_Packages*" | head -n1) ||
        die "no bookworm Packages list for $1 in $APT_DIR/lists; see $LOG_DIR/seed-apt.log"
    /usr/lib/apt/apt-helper cat-file "$list" |
        awk -v RS= '/\nEssential: yes/ { match($0, /^Package: [^\n]+/); print substr($0, 10, RLENGTH - 9) }' |
        sort -u | paste -sd,
}

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
        private_lists
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

# debian_rootfs ARCH OUT.tar INCLUDES LOGNAME [MMDEBSTRAP ARGS...]: a bookworm root (the suite
# in ROOTFS_SUITE, if set: trixie for the Python 3.13 stand-in)
# filesystem of the Essential packages plus INCLUDES and their dependencies, as a tar (keeps
# owners, modes and links exactly; a Dockerfile ADDs it), with the common files (passwd, group,
# CA bundle). The packages are unpacked, not configured (mmdebstrap's extract variant): no
# maintainer script runs, so nothing runs under QEMU and a foreign root costs what a native
# one does (the slow part of seeding used to be dpkg and py3compile emulated, ~20x slower).
# What those scripts would add, a stand-in does not need: no dpkg database of installed
# packages (no apt-get in the images), no ld.so.cache (the loader searches the multiarch
# folders), no byte-compiled stdlib. No docs, man pages or translations, like the official
# slim images; downloaded .debs are kept per architecture in $DEB_CACHE/mmdebstrap-<debian
# arch>. Extra arguments (hooks) go to mmdebstrap: --extract-hook, as the extract variant runs
# no customize hooks.
debian_rootfs() {
    local arch=$1 out=$2 include=$3 logfile="$LOG_DIR/seed-$4-mmdebstrap-$1.log" deb_arch cache
    local common essential suite=${ROOTFS_SUITE:-bookworm}
    shift 4
    deb_arch=${DEB_ARCH[$arch]}
    cache="$DEB_CACHE/mmdebstrap-$deb_arch"
    common=$(mktemp -d)
    common_root "$common"
    if [[ $suite == bookworm ]]; then
        essential=$(essential_packages "$deb_arch"),
    else
        # Another suite: its own .deb cache, and mmdebstrap's apt selects the Essential
        # packages from that suite's lists itself (an apt pattern is an --include of its own).
        cache="$DEB_CACHE/mmdebstrap-$suite-$deb_arch"
        essential=
        set -- --include='?essential' "$@"
    fi
    mkdir -p "$cache"
    : >"$logfile"
    log "seed: mmdebstrap $suite $deb_arch (essential + $include; log: $logfile)"
    if ! mmdebstrap --variant=extract --arch="$deb_arch" --include="$essential$include" \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --setup-hook="mkdir -p \"\$1/var/cache/apt/archives/\"" \
            --setup-hook="sync-in $cache /var/cache/apt/archives/" \
            --extract-hook="sync-out /var/cache/apt/archives $cache" \
            --extract-hook="sync-in $common /" \
            "$@" "$suite" "$out" \
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) $suite main" \
            >>"$logfile" 2>&1; then
        tail -n 30 "$logfile" >&2
        die "mmdebstrap for $deb_arch failed; see $logfile"
    fi
    rm -rf "$common"
}

# debian_rootfs_all DIR INCLUDES LOGNAME [MMDEBSTRAP ARGS...]: debian_rootfs for every seeded
# architecture at once (DIR/<arch>.tar); each has its own .deb cache, and the private lists are
# updated before they start.
debian_rootfs_all() {
    local dir=$1 include=$2 name=$3 arch
    local -a pids=()
    shift 3
    private_lists
    for arch in "${SEED_ARCHES[@]}"; do
        debian_rootfs "$arch" "$dir/$arch.tar" "$include" "$name" "$@" &
        pids+=($!)
    done
    wait_all "${pids[@]}" || die "a $name root filesystem could not be made (see the messages above)"
}

# wait_all PID...: wait for every one of these background jobs; false if any failed.
wait_all() {
    local pid failed=0
    for pid in "$@"; do
        wait "$pid" || failed=1
    done
    return "$failed"
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

# reseed_wanted NAME:TAG: TESTSTACK_RESEED is 1 (every image) or lists this one.
reseed_wanted() {
    [[ ${TESTSTACK_RESEED:-0} == 1 || " ${TESTSTACK_RESEED:-} " == *" $1 "* ]]
}

# build_seed NAME:TAG CONTEXT [BUILD ARGS...]: one multi-platform build+push. The registry
# (a filesystem one) can answer a push with 500 while other seed lanes push at once: such a
# push is tried again (up to three times; the build itself is cached by then).
build_seed() {
    local image=$1 ctx=$2; shift 2
    local name=${image%%:*} attempt
    log "seed: building and pushing $MIRROR/$image for $PLATFORMS (log: $LOG_DIR/seed-$name.log)"
    for attempt in 1 2 3; do
        if docker buildx build --builder default --network host \
                --platform "$PLATFORMS" "$PUSH" --progress=plain \
                -f "$HELPERS/$name/Dockerfile" -t "$MIRROR/$image" "$@" "$ctx" \
                >"$LOG_DIR/seed-$name.log" 2>&1; then
            return 0
        fi
        grep -q '500 Internal Server Error' "$LOG_DIR/seed-$name.log" && ((attempt < 3)) || break
        log "seed: the registry answered 500 while $MIRROR/$image was pushed; again ($attempt of 3)"
        sleep "$attempt"
    done
    tail -n 30 "$LOG_DIR/seed-$name.log" >&2
    die "building $MIRROR/$image failed; see $LOG_DIR/seed-$name.log"
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
    local image lane
    local -A lanes=()   # lane -> its missing images, in SEED_IMAGES order
    local -a pids=()
    for image in "${SEED_IMAGES[@]}"; do
        if ! reseed_wanted "$image" && seed_present "$image"; then
            log "seed: $MIRROR/$image already in the registry"
        else
            lane=${SEED_LANE[$image]:-debs}
            lanes[$lane]+="$image "
        fi
    done
    ((${#lanes[@]})) || return 0
    private_apt_config
    private_lists
    # The lanes run at once (one downloads while another compiles or exports); each seeds its
    # images one after the other.
    for lane in "${!lanes[@]}"; do
        # shellcheck disable=SC2086  # one word per image
        seed_lane ${lanes[$lane]} &
        pids+=($!)
    done
    wait_all "${pids[@]}" || die "seeding failed (see the messages above)"
}

seed_lane() {
    local image
    for image in "$@"; do
        "${SEED_FUNC[$image]:-seed_${image%%:*}}"
    done
}

# serve_folder NAME HOST:PORT DIR PIDFILE PATH: serve DIR over plain HTTP on HOST:PORT (Python's
# http.server), unless something answers HOST:PORT/PATH already; waits until it answers.
serve_folder() {
    local name=$1 addr=$2 dir=$3 pidfile=$4 path=$5
    if curl -fs -o /dev/null "http://$addr$path"; then
        pid_alive "$pidfile" ||
            log "warning: something not started by this script already serves http://$addr; using it"
        log "$name: already running"
        return 0
    fi
    log "$name: starting on $addr (log: $LOG_DIR/$name.log)"
    daemonize "$pidfile" "$LOG_DIR/$name.log" \
        /usr/bin/python3 -m http.server --bind "${addr%:*}" "${addr##*:}" --directory "$dir"
    if ! wait_for "$TIMEOUT" "$name" "$pidfile" curl -fs -o /dev/null "http://$addr$path"; then
        tail -n 20 "$LOG_DIR/$name.log" >&2
        die "$name did not answer http://$addr$path (port taken?); see $LOG_DIR/$name.log"
    fi
}

# More stand-ins: each scripts/teststack/seeds/*.sh appends to SEED_IMAGES, sets SEED_FUNC
# and defines its seed function with the helpers above (papt download, busybox_links,
# build_seed ...). One file per image family keeps this script readable.
for seed_file in "$HELPERS"/seeds/*.sh; do
    [[ -e $seed_file ]] || continue
    # shellcheck source=/dev/null
    source "$seed_file"
done
