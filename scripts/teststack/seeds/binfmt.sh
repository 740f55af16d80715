# shellcheck shell=bash
# Variables and helpers come from scripts/teststack.sh.
# shellcheck disable=SC2034,SC2153
# Stand-in for the emulator installer tonistiigi/binfmt, sourced by scripts/teststack.sh:
#
#   localhost:5000/library/binfmt:latest  the alpine stand-in + this machine's static qemu
#                                         interpreters + a register line per handler, copied
#                                         from the handlers setup_qemu registered; entrypoint
#                                         scripts/teststack/binfmt/binfmt (--install LIST).
#
# linux/amd64 only: it registers emulators on the machine it runs on, and every node here is
# this machine. The portal runs it for "Install emulators" (PORTAL_BINFMT_IMAGE, see `env`).

SEED_IMAGES+=(binfmt:latest)
SEED_FUNC["binfmt:latest"]=seed_binfmt

seed_binfmt() {
    local ctx="$SEED_DIR/binfmt" f name offset magic mask static
    log "seed: preparing the binfmt stand-in"
    rm -rf "$ctx"
    mkdir -p "$ctx/qemu" "$ctx/binfmt.d"
    cp "$HELPERS/binfmt/binfmt" "$ctx/binfmt"
    for f in "$BINFMT"/qemu-*; do
        [[ -e $f ]] || continue
        name=${f##*/}
        magic=$(binfmt_field "$name" magic)
        [[ -n $magic ]] || continue
        static=$(static_interp "$name")
        [[ -x $static ]] || continue
        offset=$(binfmt_field "$name" offset)
        mask=$(binfmt_field "$name" mask)
        cp "$static" "$ctx/qemu/$name-static"
        printf ':%s:M:%s:%s:%s:/usr/bin/%s-static:FPC' "$name" "${offset:-0}" \
            "$(hex_escape "$magic")" "$(hex_escape "$mask")" "$name" >"$ctx/binfmt.d/$name"
    done
    log "seed: building and pushing $MIRROR/binfmt:latest for linux/amd64 (log: $LOG_DIR/seed-binfmt.log)"
    if ! docker buildx build --builder default --network host --platform linux/amd64 "$PUSH" \
            --progress=plain --build-arg "MIRROR=$MIRROR" -f "$HELPERS/binfmt/Dockerfile" \
            -t "$MIRROR/binfmt:latest" "$ctx" >"$LOG_DIR/seed-binfmt.log" 2>&1; then
        tail -n 30 "$LOG_DIR/seed-binfmt.log" >&2
        die "building $MIRROR/binfmt:latest failed; see $LOG_DIR/seed-binfmt.log"
    fi
    rm -rf "$ctx"
}
