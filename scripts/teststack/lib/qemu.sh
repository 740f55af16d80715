# Sourced by scripts/teststack.sh: 4. QEMU binfmt handlers with the F flag

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
