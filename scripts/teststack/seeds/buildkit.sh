# shellcheck shell=bash
# Variables and helpers come from scripts/teststack.sh.
# shellcheck disable=SC2034,SC2153
# Stand-in for moby/buildkit, sourced by scripts/teststack.sh:
#
#   localhost:5000/library/buildkit:v0.13.2  buildkitd + buildctl compiled here, offline, from
#                                            the BuildKit tree Debian 13 ships in
#                                            golang-github-docker-docker-dev, with Debian's Go
#                                            1.24 and Go libraries (no module download); the
#                                            engine's runc and the libraries it links.
#
# What buildx's docker-container driver runs (PORTAL_BUILDKIT_IMAGE) and what a standalone
# BuildKit node is. linux/amd64 only: every node here is this machine, and foreign platforms
# run under its QEMU handlers. The recipe (scripts/teststack/buildkit/) was verified in
# ../shared/buildkit/trixie: a private apt configuration (own lists, cache and an empty dpkg
# status; the machine's apt is not touched), `dpkg -x` into a private root, an overlay GOPATH
# for two gaps, one patch (drops the gha and azblob cache backends and fuse-overlayfs, which
# Debian does not package; reads the amd64 level from x/sys/cpu), GOPATH-mode `go build`.
# The binaries are cached under $STATE_DIR/buildkit, keyed by the recipe's files.
#
# The same tree and Go also give the package index (seeds/python.sh) what PyPI lacks for
# Crossport's own linux/arm64 image: a Linux aarch64 wheel of `dockerfile`, the Python binding
# of BuildKit's Dockerfile parser (PyPI has its sdist and x86_64 wheels only; the sdist wants Go
# and the Go module proxy). Its sdist's Go code is cross-compiled here with cgo (Debian's
# gcc-aarch64-linux-gnu, trixie's arm64 Python headers, the stable ABI) against this BuildKit's
# parser, the one the stack's builders run, exactly as setuptools-golang builds it (c-shared,
# Python's symbols left to the interpreter that loads it). Its version carries a local label
# (+buildkit.<version>): it is not PyPI's upload, and `==3.4.0` still matches it (PEP 440).

BUILDKIT_VERSION=v0.13.2
SEED_IMAGES+=("buildkit:$BUILDKIT_VERSION")
SEED_FUNC["buildkit:$BUILDKIT_VERSION"]=seed_buildkit
# Its own apt state, folders and Go cache: it compiles while the other seeds download.
SEED_LANE["buildkit:$BUILDKIT_VERSION"]=buildkit
BUILDKIT_RECIPE="$HELPERS/buildkit"
BUILDKIT_DIR="$STATE_DIR/buildkit"
DOCKERFILE_WHEELS="$BUILDKIT_DIR/out/wheels"
# requirements.lock's `dockerfile` (the Go-side tree is this BuildKit's).
DOCKERFILE_VERSION=$(sed -n 's/^dockerfile==\([^ ;]*\).*/\1/p' "$SCRIPT_DIR/../requirements.lock")
# The cross compiler and its C library; python3-wheel packs the wheel.
BASE_PACKAGES+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross python3-wheel)

# buildkit_key: what the binaries depend on (the recipe's files); a change rebuilds them.
buildkit_key() {
    cat "$BUILDKIT_RECIPE"/pkgs-trixie.txt "$BUILDKIT_RECIPE"/buildkitd-trixie.patch \
        "$BUILDKIT_RECIPE"/packageurl-go-shim.go "${BASH_SOURCE[0]}" <(echo "$DOCKERFILE_VERSION") |
        sha256sum | cut -d' ' -f1
}

# buildkit_compile: buildkit_build, one `up` at a time (the buildkit lane and the package index
# both call it; two `up`s on one machine would otherwise share its work folder).
buildkit_compile() {
    local lock
    exec {lock}>"$STATE_DIR/buildkit.lock"
    flock "$lock"
    buildkit_build
    exec {lock}>&-
}

# buildkit_build: $BUILDKIT_DIR/out/{buildkitd,buildctl} and the aarch64 `dockerfile` wheel in
# $DOCKERFILE_WHEELS, unless built from this recipe already.
buildkit_build() {
    local key work apt pool root ov src mirror f ldflags
    key=$(buildkit_key)
    if [[ -x $BUILDKIT_DIR/out/buildkitd && -x $BUILDKIT_DIR/out/buildctl &&
        -n $(compgen -G "$DOCKERFILE_WHEELS/dockerfile-*.whl") &&
        $(cat "$BUILDKIT_DIR/out/key" 2>/dev/null) == "$key" ]]; then
        log "buildkit: binaries from this recipe already built ($BUILDKIT_DIR/out)"
        return 0
    fi
    work="$BUILDKIT_DIR/work"
    apt="$work/apt" pool="$BUILDKIT_DIR/pool" root="$work/root" ov="$work/ov"
    rm -rf "$work" "$BUILDKIT_DIR/out"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$pool/partial" "$root" \
        "$BUILDKIT_DIR/out"
    mirror=$(debian_mirror)
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
        >"$apt/own.list"
    : >"$apt/empty-status"
    # arm64 besides the machine's own architecture: the wheel's Python headers.
    local opts=(-o "Dir::Etc::SourceList=$apt/own.list" -o Dir::Etc::SourceParts=/dev/null
        -o "APT::Architectures::=$(dpkg --print-architecture)" -o APT::Architectures::=arm64
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
        -o "Dir::State::status=$apt/empty-status" -o "Dir::Cache::archives=$pool"
        -o APT::Install-Recommends=false -o Debug::NoLocking=1)
    log "buildkit: downloading Debian 13's BuildKit source, Go 1.24 and Go libraries (log: $LOG_DIR/buildkit.log)"
    {
        apt-get -q "${opts[@]}" update &&
            # shellcheck disable=SC2046
            apt-get -q "${opts[@]}" -y --download-only install \
                $(grep -v '^#' "$BUILDKIT_RECIPE/pkgs-trixie.txt") golang-1.24-go &&
            (cd "$pool" && apt-get -q "${opts[@]}" download libpython3.13-dev:arm64)
    } >>"$LOG_DIR/buildkit.log" 2>&1 || die "buildkit: apt download failed; see $LOG_DIR/buildkit.log"
    for f in "$pool"/golang-*.deb "$pool"/*-dev_*_all.deb; do
        dpkg -x "$f" "$root"
    done
    src="$root/usr/share/gocode/src"
    mkdir -p "$ov/src/github.com/moby" "$ov/src/github.com/coreos/go-systemd" \
        "$ov/src/github.com/package-url/packageurl-go"
    cp -a "$src/github.com/moby/buildkit" "$ov/src/github.com/moby/"   # patched below
    ln -sfn "$src/github.com/coreos/go-systemd" "$ov/src/github.com/coreos/go-systemd/v22"
    cp "$BUILDKIT_RECIPE/packageurl-go-shim.go" "$ov/src/github.com/package-url/packageurl-go/packageurl.go"
    (cd "$work" && patch -s -p0 <"$BUILDKIT_RECIPE/buildkitd-trixie.patch") >>"$LOG_DIR/buildkit.log" 2>&1 ||
        die "buildkit: the patch did not apply; see $LOG_DIR/buildkit.log"
    ldflags="-s -w -X github.com/moby/buildkit/version.Version=$BUILDKIT_VERSION-debian"
    ldflags+=" -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit"
    ldflags+=" -X github.com/moby/buildkit/version.Revision=debian-trixie"
    log "buildkit: compiling buildkitd and buildctl (about a minute on two cores)"
    for f in buildkitd buildctl; do
        (
            export GOROOT="$root/usr/lib/go-1.24" GO111MODULE=off GOPROXY=off GOFLAGS= \
                GOTOOLCHAIN=local GOCACHE="$BUILDKIT_DIR/gocache" CGO_ENABLED=0 \
                GOPATH="$ov:$root/usr/share/gocode"
            cd "$work" && "$GOROOT/bin/go" build -p 2 -tags "osusergo netgo static_build" \
                -ldflags "$ldflags" -o "$BUILDKIT_DIR/out/$f" "github.com/moby/buildkit/cmd/$f"
        ) >>"$LOG_DIR/buildkit.log" 2>&1 || die "buildkit: go build of $f failed; see $LOG_DIR/buildkit.log"
    done
    dockerfile_wheel "$work" "$root" "$ov" "$pool"
    echo "$key" >"$BUILDKIT_DIR/out/key"
    rm -rf "$work"   # 1.8 GB unpacked; the .deb pool and Go cache make a rebuild quick
    log "buildkit: $("$BUILDKIT_DIR/out/buildkitd" --version)"
}

# dockerfile_wheel WORK ROOT OVERLAY POOL: $DOCKERFILE_WHEELS/dockerfile-<version>+buildkit.<v>-
# cp39-abi3-manylinux_2_<N>_aarch64.whl, N being the newest glibc symbol version it links. The
# sdist comes from PyPI (host_pip, seeds/python.sh), the Python headers from the Debian mirror;
# the Go build uses no module proxy.
dockerfile_wheel() {
    local work=$1 root=$2 ov=$3 pool=$4 src pkg whl glibc version
    src="$work/sdist/dockerfile-$DOCKERFILE_VERSION" pkg="$ov/src/github.com/asottile/dockerfile"
    version="$DOCKERFILE_VERSION+buildkit.${BUILDKIT_VERSION#v}"
    whl="$work/wheel"
    mkdir -p "$pkg" "$whl/dockerfile-$version.dist-info" "$work/arm64" "$DOCKERFILE_WHEELS"
    log "buildkit: cross-compiling dockerfile $version for linux/arm64 (Python's stable ABI)"
    {
        host_pip download --no-deps --no-binary=:all: -d "$work/sdist" "dockerfile==$DOCKERFILE_VERSION" &&
            tar -xzf "$work/sdist/dockerfile-$DOCKERFILE_VERSION.tar.gz" -C "$work/sdist" &&
            cp -a "$src/parse.go" "$src/pylib" "$pkg/" &&
            dpkg -x "$(compgen -G "$pool/libpython3.13-dev_*_arm64.deb" | sort -V | tail -n1)" "$work/arm64" &&
            (
                export GOROOT="$root/usr/lib/go-1.24" GO111MODULE=off GOPROXY=off GOFLAGS= \
                    GOTOOLCHAIN=local GOCACHE="$BUILDKIT_DIR/gocache" GOPATH="$ov:$root/usr/share/gocode" \
                    GOOS=linux GOARCH=arm64 CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc \
                    CGO_CFLAGS="-I$work/arm64/usr/include/python3.13 -I$work/arm64/usr/include -DPy_LIMITED_API" \
                    CGO_LDFLAGS=-Wl,--unresolved-symbols=ignore-all
                cd "$pkg/pylib" && "$GOROOT/bin/go" build -buildmode=c-shared -ldflags "-s -w" \
                    -o "$whl/dockerfile.abi3.so" .
            )
    } >>"$LOG_DIR/buildkit.log" 2>&1 || die "buildkit: building the dockerfile wheel failed; see $LOG_DIR/buildkit.log"
    rm -f "$whl/dockerfile.abi3.h"
    glibc=$(aarch64-linux-gnu-readelf -V "$whl/dockerfile.abi3.so" | grep -o 'GLIBC_2\.[0-9]*' |
        sort -uV | tail -n1)
    sed "s/^Version: .*/Version: $version/" "$src/PKG-INFO" >"$whl/dockerfile-$version.dist-info/METADATA"
    cp "$src/LICENSE" "$whl/dockerfile-$version.dist-info/"
    echo dockerfile >"$whl/dockerfile-$version.dist-info/top_level.txt"
    printf 'Wheel-Version: 1.0\nGenerator: crossport-teststack\nRoot-Is-Purelib: false\nTag: cp39-abi3-manylinux_2_%s_aarch64\n' \
        "${glibc#GLIBC_2.}" >"$whl/dockerfile-$version.dist-info/WHEEL"
    rm -f "$DOCKERFILE_WHEELS"/*.whl
    /usr/bin/python3 -m wheel pack -d "$DOCKERFILE_WHEELS" "$whl" >>"$LOG_DIR/buildkit.log" 2>&1 ||
        die "buildkit: packing the dockerfile wheel failed; see $LOG_DIR/buildkit.log"
    log "buildkit: $(basename "$(compgen -G "$DOCKERFILE_WHEELS/*.whl")")"
}

seed_buildkit() {
    local ctx="$SEED_DIR/buildkit" runc lib
    buildkit_compile
    rm -rf "$ctx"
    mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/usr/sbin" "$ctx/rootfs/tmp" \
        "$ctx/rootfs/etc/buildkit" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/var/lib/buildkit"
    chmod 1777 "$ctx/rootfs/tmp"
    cp "$BUILDKIT_DIR/out/buildkitd" "$BUILDKIT_DIR/out/buildctl" "$ctx/rootfs/usr/bin/"
    runc=$(command -v runc) || die "buildkit: no runc on this machine (docker.io brings it)"
    cp "$runc" "$ctx/rootfs/usr/sbin/runc"
    # runc links libseccomp and glibc: the same files, at the same paths, as on this machine.
    for lib in $(ldd "$runc" | grep -o '/[^ ]*'); do
        cp --parents -L "$lib" "$ctx/rootfs/"
    done
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
    cp "$BUILDKIT_RECIPE/Dockerfile" "$ctx/Dockerfile"
    log "seed: building and pushing $MIRROR/buildkit:$BUILDKIT_VERSION for linux/amd64 (log: $LOG_DIR/seed-buildkit.log)"
    if ! docker buildx build --builder default --network host --platform linux/amd64 "$PUSH" \
            --progress=plain -t "$MIRROR/buildkit:$BUILDKIT_VERSION" "$ctx" \
            >"$LOG_DIR/seed-buildkit.log" 2>&1; then
        tail -n 30 "$LOG_DIR/seed-buildkit.log" >&2
        die "building $MIRROR/buildkit:$BUILDKIT_VERSION failed; see $LOG_DIR/seed-buildkit.log"
    fi
    rm -rf "$ctx"
}
