# Crossport's Python fallback stage (the python plugin embeds this file in its Dockerfile): runs on
# the target platform, under QEMU for foreign ones, and installs only what the plan left to it.
set -eu
mkdir -p /install
if [ -s /plan/emulated.txt ]; then
    how="UNDER EMULATION"
    [ "$TARGETPLATFORM" != "$BUILDPLATFORM" ] || how="natively (the build platform)"
    echo "crossport: $TARGETPLATFORM: installing $how: $(tr '\n' ' ' </plan/emulated.txt)"
    hint="if a package needs a compiler, set the option fallback=full (python with gcc)"
    python -m pip install --target=/install --no-deps -r /plan/emulated.txt || {
        echo "crossport: $TARGETPLATFORM: installing under emulation failed; $hint" >&2
        exit 1
    }
fi
