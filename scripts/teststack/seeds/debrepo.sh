# shellcheck shell=bash
# Variables and helpers come from scripts/teststack.sh.
# shellcheck disable=SC2034,SC2153
# A Debian package repository for image builds, sourced by scripts/teststack.sh:
#
#   http://127.0.0.1:3142/   a flat repository (Packages at the top) of Debian trixie's
#                            packages for amd64, arm64 and armhf: what images built on the
#                            trixie stand-in (python:3.13-slim) install with apt-get, and their
#                            dependencies. The stand-in's one apt source, so a build's
#                            `apt-get install` never leaves the machine.
#
# The .debs are what mmdebstrap downloads for the stand-in's packages plus DEBREPO_PACKAGES
# (its --format=null: download and unpack, keep nothing but the .deb cache).

DEBREPO_ADDR=127.0.0.1:3142
DEBREPO_DIR="$STATE_DIR/debrepo"
DEBREPO_PID="$RUN_DIR/debrepo.pid"
DEBREPO_SOURCE="deb [trusted=yes] http://$DEBREPO_ADDR/ ./"
# Crossport's own image installs these: its build worker runs docker, buildx and git.
DEBREPO_PACKAGES=(git docker-cli docker-buildx ca-certificates)
BASE_PACKAGES+=(dpkg-dev)  # dpkg-scanpackages

debrepo_fetch() {
    local want arch pids=()
    want="trixie ${SEED_ARCHES[*]} ${DEBREPO_PACKAGES[*]}"
    if [[ -s $DEBREPO_DIR/contents && $(<"$DEBREPO_DIR/contents") == "$want" &&
        -s $DEBREPO_DIR/Packages ]]; then
        log "debrepo: already holds $want"
        return 0
    fi
    log "debrepo: downloading trixie's ${DEBREPO_PACKAGES[*]} and their dependencies"
    for arch in "${SEED_ARCHES[@]}"; do
        ROOTFS_SUITE=trixie debian_rootfs "$arch" /dev/null \
            "python3,python3-pip,apt,$(IFS=,; echo "${DEBREPO_PACKAGES[*]}")" debrepo \
            --format=null &
        pids+=($!)
    done
    wait_all "${pids[@]}" || die "downloading the Debian repository's packages failed"
    rm -rf "$DEBREPO_DIR.tmp"
    mkdir -p "$DEBREPO_DIR.tmp"
    for arch in "${SEED_ARCHES[@]}"; do
        # Architecture-independent packages are in every cache: one copy each.
        ln -f "$DEB_CACHE/mmdebstrap-trixie-${DEB_ARCH[$arch]}"/*.deb "$DEBREPO_DIR.tmp/"
    done
    (cd "$DEBREPO_DIR.tmp" && dpkg-scanpackages --multiversion . /dev/null >Packages) \
        2>>"$LOG_DIR/debrepo.log" || die "dpkg-scanpackages failed; see $LOG_DIR/debrepo.log"
    printf '%s' "$want" >"$DEBREPO_DIR.tmp/contents"
    rm -rf "$DEBREPO_DIR.old"
    [[ -e $DEBREPO_DIR ]] && mv "$DEBREPO_DIR" "$DEBREPO_DIR.old"
    mv "$DEBREPO_DIR.tmp" "$DEBREPO_DIR"
    rm -rf "$DEBREPO_DIR.old"
    log "debrepo: $(grep -c '^Package:' "$DEBREPO_DIR/Packages") packages indexed"
}

# Filled and served on every `up`, like the package index (python.sh).
eval "$(declare -f seed_images | sed '1s/^seed_images/_debrepo_prev_seed_images/')"
seed_images() {
    local lock
    _debrepo_prev_seed_images
    exec {lock}>"$STATE_DIR/debrepo.lock"
    flock "$lock"
    debrepo_fetch
    exec {lock}>&-
    serve_folder debrepo "$DEBREPO_ADDR" "$DEBREPO_DIR" "$DEBREPO_PID" /Packages
}

eval "$(declare -f cmd_down | sed '1s/^cmd_down/_debrepo_prev_cmd_down/')"
cmd_down() {
    _debrepo_prev_cmd_down
    stop_pidfile "$DEBREPO_PID" debrepo
}
