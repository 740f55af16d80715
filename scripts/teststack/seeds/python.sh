# shellcheck shell=bash
# Variables and helpers come from scripts/teststack.sh; hooks are expanded by mmdebstrap.
# shellcheck disable=SC2034,SC2153,SC2016
# Python stand-ins and the local package index; sourced by scripts/teststack.sh.
#
#   localhost:5000/library/python:3.11-slim  bookworm essentials + python3 + python3-pip,
#                                            like the official slim image: runtime and
#                                            build-platform stage of the python plugin.
#   localhost:5000/library/python:3.11       the same plus gcc, libc6-dev and python3-dev,
#                                            like the official full image: the plugin's
#                                            emulated fallback stage compiles sdists in it.
#   localhost:5000/library/python:3.13-slim  the same from Debian trixie (python3.13): what
#                                            Crossport's own image is built on.
#   http://127.0.0.1:3141/simple/            PEP 503 index of a few real wheels/sdists
#                                            (PORTAL_TEST_PYPI): builds never reach PyPI.
#
# Root filesystems come from mmdebstrap, unpacked without maintainer scripts (see
# debian_rootfs): nothing runs under QEMU; downloaded .debs are kept per architecture.

SEED_IMAGES+=(python:3.11-slim python:3.11 python:3.13-slim)
SEED_FUNC["python:3.11-slim"]=seed_python_slim
SEED_FUNC["python:3.11"]=seed_python_full
SEED_FUNC["python:3.13-slim"]=seed_python313_slim
SEED_LANE["python:3.11-slim"]=mmdebstrap
SEED_LANE["python:3.11"]=mmdebstrap
SEED_LANE["python:3.13-slim"]=mmdebstrap
# python3-pip is the host pip that fills the index (mmdebstrap, for the root filesystems,
# is in teststack.sh's packages).
BASE_PACKAGES+=(python3-pip)

PYPI_ADDR=127.0.0.1:3141
PYPI_DIR="$STATE_DIR/pypi"
PYPI_PID="$RUN_DIR/pypi.pid"
# cp311 wheels for every seeded platform: orjson publishes manylinux armv7l wheels too, so the
# sample app needs no emulation anywhere. The rest is what builds need from an index: build
# backends (pip's isolated builds fetch setuptools/wheel, flit_core for flit projects),
# docopt, a pure-Python package published only as an sdist (exercises the plugin's fallback),
# and Django with its dependencies, what the realistic-size Python sample of
# benchmarks/crossbuild.py installs (8 MB of pure Python).
PYPI_PLATFORM_WHEELS=(orjson==3.11.3)
PYPI_PURE_WHEELS=(setuptools==84.2.1 wheel==0.48.0 flit_core==4.2.0
    django==5.2.8 asgiref==3.10.0 sqlparse==0.5.3)
PYPI_SDISTS=(docopt==0.6.2)
# Crossport's own runtime dependencies (pyproject.toml's, at requirements.lock's versions), as
# cp313 wheels for both of its image's platforms: what tests/e2e/test_self_image.py builds
# Crossport's image from. `dockerfile` (a Go extension) publishes no Linux aarch64 wheel:
# seeds/buildkit.sh cross-compiles one from its sdist and Debian's BuildKit tree.
PYPI_SELF_PLATFORMS=(x86_64 aarch64)

# ---------------------------------------------------------------- stand-in images

# python_rootfs DIR INCLUDES: debian_rootfs_all plus what the official image has: no
# EXTERNALLY-MANAGED marker (the plugin pip-installs as root), python/pip names in
# /usr/local/bin, cc where gcc is (the link Debian's alternatives would make), and the
# standard library and pip byte-compiled, as Debian's py3compile (a maintainer script the
# extract variant skips) would: without it every python start in a build compiles what it
# imports again (pip: 0.8 s instead of 0.2 s). .pyc files are the same on every architecture,
# so the host's python3.11 (Debian bookworm's, the same release) writes them; for another
# version, the host's interpreter of that version, if it has one (the magic number is per
# minor version).
# python_rootfs DIR INCLUDES [VERSION [MMDEBSTRAP ARGS...]]
python_rootfs() {
    local dir=$1 include=$2 version=${3:-3.11} host
    shift 3 || shift $#
    host=$(compgen -G "/usr/bin/python$version" || compgen -G "$HOME/.pyenv/versions/$version.*/bin/python$version" | head -n1 || true)
    # shellcheck disable=SC2016  # $1 is expanded by mmdebstrap, not here
    debian_rootfs_all "$dir" "$include" "python$version" "$@" \
        --extract-hook="if [ -x '$host' ]; then '$host' -m compileall -q -j0 -s \"\$1\" -p / \"\$1/usr/lib/python$version\" \"\$1/usr/lib/python3/dist-packages\" >/dev/null || true; fi" \
        --extract-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
        --extract-hook='mkdir -p "$1/usr/local/bin"; for n in python:python3 python3:python3 pip:pip3 pip3:pip3; do ln -sf /usr/bin/${n#*:} "$1/usr/local/bin/${n%%:*}"; done' \
        --extract-hook='if [ -e "$1/usr/bin/gcc" ]; then ln -sf gcc "$1/usr/bin/cc"; fi'
}

# seed_python_image NAME:TAG INCLUDES DESCRIPTION [PYTHON_VERSION DEB_CACHE [MMDEBSTRAP ARGS...]]
seed_python_image() {
    local image=$1 include=$2 description=$3 python=${4:-3.11} cache=${5:-mmdebstrap-amd64}
    local ctx arch version lock
    shift 5 || shift $#
    # Two `up`s at once (several people share a machine) take turns; the second one finds the
    # image pushed and stops. Each run has its own context folder.
    exec {lock}>"$STATE_DIR/seed-python.lock"
    flock "$lock"
    if ! reseed_wanted "$image" && seed_present "$image"; then
        log "seed: $MIRROR/$image was pushed meanwhile"
        exec {lock}>&-
        return 0
    fi
    mkdir -p "$SEED_DIR"
    ctx=$(mktemp -d "$SEED_DIR/python.XXXXXX")
    python_rootfs "$ctx" "$include" "$python" "$@"
    version=$(dpkg-deb -f "$(compgen -G "$DEB_CACHE/$cache/python$python-minimal_*.deb" | head -n1)" Version)
    build_seed "$image" "$ctx" --build-arg "PYTHON_VERSION=${version%%-*}" \
        --build-arg "DESCRIPTION=$description"
    rm -rf "$ctx"
    exec {lock}>&-
}

seed_python_slim() {
    seed_python_image python:3.11-slim python3,python3-pip \
        "Crossport offline stand-in for python:3.11-slim (Debian bookworm python3.11 + pip)"
}

seed_python_full() {
    seed_python_image python:3.11 python3,python3-pip,python3-dev,gcc,libc6-dev \
        "Crossport offline stand-in for python:3.11 (Debian bookworm python3.11, pip, gcc, headers)"
}

# Debian trixie's Python 3.13 (mmdebstrap's extract variant, as above): the base of Crossport's
# own image, built by its python plugin in tests/e2e/test_self_image.py. Like the official
# image, apt-get works in it: apt is there, the dpkg database lists what was unpacked
# (python/dpkg-database), and its one source is the stack's Debian repository (debrepo.sh).
seed_python313_slim() {
    ROOTFS_SUITE=trixie seed_python_image python:3.13-slim python3,python3-pip,apt \
        "Crossport offline stand-in for python:3.13-slim (Debian trixie python3.13 + pip)" \
        3.13 mmdebstrap-trixie-amd64 \
        --extract-hook="$HELPERS/python/dpkg-database" \
        --extract-hook="rm -f \"\$1\"/etc/apt/sources.list.d/*; echo '$DEBREPO_SOURCE' >\"\$1/etc/apt/sources.list\""
}

# ---------------------------------------------------------------- package index

# The host's own pip, ignoring any pip configuration of this machine (extra indexes,
# find-links, constraints), so every machine builds the same index from PyPI.
host_pip() {
    env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT \
        PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 /usr/bin/python3 -m pip "$@"
}

# self_requirements: Crossport's runtime requirements, one per line, from pyproject.toml.
self_requirements() {
    /usr/bin/python3 -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
        "$SCRIPT_DIR/../pyproject.toml"
}

pypi_fetch() {
    local files="$PYPI_DIR/files" stamp want plat self
    buildkit_compile   # the aarch64 `dockerfile` wheel (a no-op once the buildkit lane made it)
    self=$(cat "$SCRIPT_DIR/../pyproject.toml" "$SCRIPT_DIR/../requirements.lock" \
        "$BUILDKIT_DIR/out/key" | sha256sum)
    want="${PYPI_PLATFORM_WHEELS[*]} ${PYPI_PURE_WHEELS[*]} ${PYPI_SDISTS[*]} self:${self%% *}"
    stamp="$PYPI_DIR/contents"
    if [[ -s $stamp && $(<"$stamp") == "$want" && -s $PYPI_DIR/simple/index.html ]]; then
        log "pypi: index already holds $want"
        return 0
    fi
    log "pypi: downloading $want (log: $LOG_DIR/pypi-fetch.log)"
    rm -rf "$PYPI_DIR.tmp"
    mkdir -p "$PYPI_DIR.tmp/files"
    for plat in x86_64 aarch64 armv7l; do
        host_pip download --no-deps --only-binary=:all: --platform "manylinux2014_$plat" \
            --python-version 3.11 --implementation cp --abi cp311 \
            -d "$PYPI_DIR.tmp/files" "${PYPI_PLATFORM_WHEELS[@]}" >>"$LOG_DIR/pypi-fetch.log" 2>&1 ||
            die "pip download of ${PYPI_PLATFORM_WHEELS[*]} for $plat failed; see $LOG_DIR/pypi-fetch.log"
    done
    host_pip download --no-deps --only-binary=:all: -d "$PYPI_DIR.tmp/files" \
        "${PYPI_PURE_WHEELS[@]}" >>"$LOG_DIR/pypi-fetch.log" 2>&1 ||
        die "pip download of ${PYPI_PURE_WHEELS[*]} failed; see $LOG_DIR/pypi-fetch.log"
    host_pip download --no-deps --no-binary=:all: -d "$PYPI_DIR.tmp/files" \
        "${PYPI_SDISTS[@]}" >>"$LOG_DIR/pypi-fetch.log" 2>&1 ||
        die "pip download of ${PYPI_SDISTS[*]} failed; see $LOG_DIR/pypi-fetch.log"
    for plat in "${PYPI_SELF_PLATFORMS[@]}"; do
        host_pip download --only-binary=:all: --python-version 3.13 --implementation cp \
            --abi cp313 --platform "manylinux2014_$plat" --platform "manylinux_2_28_$plat" \
            --platform "manylinux_2_34_$plat" -c "$SCRIPT_DIR/../requirements.lock" \
            --find-links "$DOCKERFILE_WHEELS" \
            -d "$PYPI_DIR.tmp/files" -r <(self_requirements) >>"$LOG_DIR/pypi-fetch.log" 2>&1 ||
            die "pip download of Crossport's requirements for $plat failed; see $LOG_DIR/pypi-fetch.log"
    done
    pypi_simple_tree "$PYPI_DIR.tmp"
    printf '%s' "$want" >"$PYPI_DIR.tmp/contents"
    # Swap in whole: a running server keeps serving the old tree until the rename.
    rm -rf "$PYPI_DIR.old"
    [[ -e $PYPI_DIR ]] && mv "$PYPI_DIR" "$PYPI_DIR.old"
    mv "$PYPI_DIR.tmp" "$PYPI_DIR"
    rm -rf "$PYPI_DIR.old"
    files=$(find "$PYPI_DIR/files" -type f | wc -l)
    log "pypi: $files files indexed"
}

# pypi_simple_tree DIR: write DIR/simple/ (PEP 503) for the files in DIR/files, with sha256
# fragments so pip verifies every download.
pypi_simple_tree() {
    /usr/bin/python3 - "$1" <<'PY'
import hashlib, html, re, sys
from pathlib import Path

root = Path(sys.argv[1])
projects: dict[str, list[Path]] = {}
for f in sorted((root / "files").iterdir()):
    if f.name.endswith(".whl"):
        name = f.name.split("-")[0]
    elif f.name.endswith((".tar.gz", ".zip")):
        name = f.name.rsplit("-", 1)[0]
    else:
        continue
    projects.setdefault(re.sub(r"[-_.]+", "-", name).lower(), []).append(f)
simple = root / "simple"
simple.mkdir()
links = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects))
(simple / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
for project, files in projects.items():
    (simple / project).mkdir()
    rows = "".join(
        f'<a href="../../files/{html.escape(f.name)}#sha256='
        f'{hashlib.sha256(f.read_bytes()).hexdigest()}">{html.escape(f.name)}</a>\n'
        for f in files
    )
    (simple / project / "index.html").write_text(
        f"<!DOCTYPE html>\n<html><body>\n{rows}</body></html>\n"
    )
PY
}

start_pypi() { serve_folder pypi "$PYPI_ADDR" "$PYPI_DIR" "$PYPI_PID" /simple/; }

# `up` calls seed_images after the registry is running; wrap it so the index is filled and
# served on every `up`, not only when an image is missing. Renaming the previous definition
# keeps other seed files' wrappers (if any) in the chain.
eval "$(declare -f seed_images | sed '1s/^seed_images/_python_prev_seed_images/')"
seed_images() {
    local lock
    _python_prev_seed_images
    # Concurrent `up`s fill the index one after the other. The lock is released before the
    # server starts: a daemon would inherit the descriptor and hold the lock for good.
    exec {lock}>"$STATE_DIR/pypi-fetch.lock"
    flock "$lock"
    pypi_fetch
    exec {lock}>&-
    start_pypi
}

# `down` stops the index server too, like the registry.
eval "$(declare -f cmd_down | sed '1s/^cmd_down/_python_prev_cmd_down/')"
cmd_down() {
    _python_prev_cmd_down
    stop_pidfile "$PYPI_PID" pypi
}
