# shellcheck shell=bash
# Variables and helpers come from scripts/teststack.sh; hooks are expanded by mmdebstrap.
# shellcheck disable=SC2034,SC2153,SC2016
# Stand-ins for the static-site plugin, sourced by scripts/teststack.sh:
#
#   localhost:5000/library/caddy:2-alpine  busybox root (like the alpine stand-in) + Debian
#                                          bookworm's caddy 2.6 with the libc6/libzstd1 it
#                                          links, /etc/caddy/Caddyfile, /usr/share/caddy;
#                                          the plugin's per-platform web server image.
#   localhost:5000/library/node:18-slim    bookworm essentials + nodejs 18 + npm, from
#                                          mmdebstrap; the plugin's npm build stage.
#
# Both for linux/amd64, linux/arm64 and linux/arm/v7. The plugin only runs node on the build
# platform, but the arm variants are seeded too so a naive (emulated) Dockerfile can be
# measured against it (unpacked without maintainer scripts, see debian_rootfs).
# Build contexts and Dockerfiles: scripts/teststack/static/.

SEED_IMAGES+=(caddy:2-alpine node:18-slim)
SEED_FUNC["caddy:2-alpine"]=seed_static_caddy
SEED_FUNC["node:18-slim"]=seed_static_node
SEED_LANE["node:18-slim"]=mmdebstrap

STATIC_FILES="$HELPERS/static"

# static_build_seed NAME:TAG CONTEXT DOCKERFILE [BUILD ARGS...]: like build_seed, but with a
# Dockerfile from scripts/teststack/static/ (build_seed wants scripts/teststack/NAME/).
static_build_seed() {
    local image=$1 ctx=$2 file=$3 name=${1%%:*}
    shift 3
    log "seed: building and pushing $MIRROR/$image for $PLATFORMS (log: $LOG_DIR/seed-$name.log)"
    if ! docker buildx build --builder default --network host \
            --platform "$PLATFORMS" "$PUSH" --progress=plain \
            -f "$file" -t "$MIRROR/$image" "$@" "$ctx" \
            >"$LOG_DIR/seed-$name.log" 2>&1; then
        tail -n 30 "$LOG_DIR/seed-$name.log" >&2
        die "building $MIRROR/$image failed; see $LOG_DIR/seed-$name.log"
    fi
}

# static_locked IMAGE FUNC: run FUNC with a per-image lock; two `up`s at once (several people
# share a machine) take turns, and the second finds the image pushed and stops.
static_locked() {
    local image=$1 func=$2 lock
    exec {lock}>"$STATE_DIR/seed-${image%%:*}.lock"
    flock "$lock"
    if ! reseed_wanted "$image" && seed_present "$image"; then
        log "seed: $MIRROR/$image was pushed meanwhile"
    else
        "$func"
    fi
    exec {lock}>&-
}

seed_static_caddy() { static_locked caddy:2-alpine static_caddy_build; }
seed_static_node() { static_locked node:18-slim static_node_build; }

static_caddy_build() {
    local ctx arch deb_arch tmp version
    log "seed: preparing the caddy stand-in root filesystems"
    mkdir -p "$SEED_DIR"
    ctx=$(mktemp -d "$SEED_DIR/caddy.XXXXXX")
    common_root "$ctx/common"
    # The official image's layout: config, default site, state folders (XDG_*_HOME), /srv.
    install -D -m 644 "$STATIC_FILES/Caddyfile" "$ctx/common/etc/caddy/Caddyfile"
    install -D -m 644 "$STATIC_FILES/index.html" "$ctx/common/usr/share/caddy/index.html"
    mkdir -p "$ctx/common/config/caddy" "$ctx/common/data/caddy" "$ctx/common/srv"
    # /etc/mime.types (Architecture: all), which caddy reads like the official image's mailcap.
    tmp=$(mktemp -d)
    unpack media-types all "$tmp"
    install -m 644 "$tmp/etc/mime.types" "$ctx/common/etc/mime.types"
    rm -rf "$tmp"
    for arch in "${SEED_ARCHES[@]}"; do
        deb_arch=${DEB_ARCH[$arch]}
        busybox_root "$arch" "$ctx/$arch"
        # Debian's caddy is a cgo build: it needs glibc's loader and libzstd (amd64 keeps the
        # loader in /lib64). Only the binary is taken from the package, not its systemd units.
        unpack libc6 "$deb_arch" "$ctx/$arch"
        unpack libzstd1 "$deb_arch" "$ctx/$arch"
        tmp=$(mktemp -d)
        unpack caddy "$deb_arch" "$tmp"
        install -D -m 755 "$tmp/usr/bin/caddy" "$ctx/$arch/usr/bin/caddy"
        rm -rf "$tmp" "$ctx/$arch/usr/share/doc" "$ctx/$arch/usr/share/lintian"
    done
    "$ctx/amd64/bin/busybox" --list >"$ctx/busybox.applets"
    for arch in "${SEED_ARCHES[@]}"; do
        busybox_links "$ctx/$arch" "$ctx/busybox.applets"
    done
    rm -f "$ctx/busybox.applets"
    version=$(dpkg-deb -f "$(fetch_deb caddy amd64)" Version)
    version=${version%%-*}
    static_build_seed caddy:2-alpine "$ctx" "$STATIC_FILES/caddy.Dockerfile" \
        --build-arg "CADDY_VERSION=v$version"
    rm -rf "$ctx"
}

static_node_build() {
    local ctx version
    mkdir -p "$SEED_DIR"
    ctx=$(mktemp -d "$SEED_DIR/node.XXXXXX")
    debian_rootfs_all "$ctx" nodejs,npm node
    version=$(dpkg-deb -f "$(compgen -G "$DEB_CACHE/mmdebstrap-amd64/nodejs_*.deb" | head -n1)" Version)
    version=${version%%[+~-]*}
    static_build_seed node:18-slim "$ctx" "$STATIC_FILES/node.Dockerfile" \
        --build-arg "NODE_VERSION=$version"
    rm -rf "$ctx"
}
