# shellcheck shell=bash
# Variables and helpers (SEED_FUNC, DEB_ARCH, papt, log ...) come from scripts/teststack.sh.
# shellcheck disable=SC2034,SC2153
# Stand-ins for the Java plugin, sourced by scripts/teststack.sh:
#   eclipse-temurin:17-jre       java on PATH, JAVA_HOME=/opt/java/openjdk
#   eclipse-temurin:17-jdk       + javac, jar, jshell
#   maven:3-eclipse-temurin-17   + Debian's maven 3.8.7 and its plugin packages in
#                                /usr/share/maven-repo, mirrored for every repository
# all for linux/amd64, linux/arm64 and linux/arm/v7, from Debian bookworm's OpenJDK 17
# (.debs unpacked with dpkg-deb, no maintainer scripts: nothing runs under QEMU).
# One build context and one Dockerfile (scripts/teststack/java/) with a target per image,
# so the three share their layers.

SEED_IMAGES+=(eclipse-temurin:17-jre eclipse-temurin:17-jdk maven:3-eclipse-temurin-17)
SEED_FUNC["eclipse-temurin:17-jre"]=seed_java
SEED_FUNC["eclipse-temurin:17-jdk"]=seed_java
SEED_FUNC["maven:3-eclipse-temurin-17"]=seed_java

# libc-bin brings the C.UTF-8 locale: without it the JVM falls back to ASCII file.encoding.
JAVA_JRE_PACKAGES=(libc6 libc-bin libgcc-s1 libstdc++6 zlib1g openjdk-17-jre-headless)
JAVA_JDK_PACKAGES=(openjdk-17-jdk-headless)
# What the issue names; their dependency closure is worked out by apt (java_maven_closure).
JAVA_MAVEN_ROOTS=(maven libmaven-compiler-plugin-java libmaven-jar-plugin-java
    libmaven-resources-plugin-java libmaven-install-plugin-java libsurefire-java)
JAVA_SEEDED=0

# java_fetch ARCH PKG...: download the missing .debs in one apt call (fetch_deb per package
# would start ~100 apt processes for Maven's closure).
java_fetch() {
    local arch=$1 pkg missing=() f
    shift
    mkdir -p "$DEB_CACHE/$arch"
    for pkg in "$@"; do
        f=$(compgen -G "$DEB_CACHE/$arch/${pkg}_*.deb" | head -n1 || true)
        if [[ -n $f ]] && dpkg-deb -I "$f" >/dev/null 2>&1; then
            continue
        fi
        rm -f "$f"
        if [[ $arch == all ]]; then missing+=("$pkg"); else missing+=("$pkg:$arch"); fi
    done
    ((${#missing[@]})) || return 0
    private_lists
    log "seed: downloading ${#missing[@]} packages for $arch"
    (cd "$DEB_CACHE/$arch" && papt download "${missing[@]}") >>"$LOG_DIR/seed-apt.log" 2>&1 ||
        die "cannot download ${missing[*]}; see $LOG_DIR/seed-apt.log"
}

# java_unpack_all ARCH DEST PKG...
java_unpack_all() {
    local arch=$1 dest=$2 pkg
    shift 2
    java_fetch "$arch" "$@"
    for pkg in "$@"; do
        dpkg-deb -x "$(compgen -G "$DEB_CACHE/$arch/${pkg}_*.deb" | head -n1)" "$dest"
    done
}

# The Java libraries Maven and the plugins need: apt resolves the closure on an empty
# system; we keep the Architecture: all Java packages (the JDK, libc and friends are in
# the jdk layer already; perl, fonts, debconf ... are never used by mvn).
java_maven_closure() {
    private_lists
    papt -s install --no-install-recommends "${JAVA_MAVEN_ROOTS[@]}" 2>>"$LOG_DIR/seed-apt.log" |
        awk '$1 == "Inst" { print $2 }' |
        grep -E -- '-java$|^(maven|ant|junit4|junit5|velocity)$' | sort -u
}

seed_java() {
    # One call builds all three images: the other two SEED_FUNC entries find it done.
    ((JAVA_SEEDED == 0)) || return 0
    local ctx="$SEED_DIR/java" arch deb_arch maven_pkgs=() jvm version target image
    log "seed: preparing the Java stand-ins (~250 MB of .debs on the first run)"
    rm -rf "$ctx"
    mkdir -p "$ctx/tools" "$ctx/maven"
    common_root "$ctx/common"
    cp "$HELPERS/java/MakeCacerts.java" "$HELPERS/java/maven-settings.xml" "$ctx/tools/"
    # Every architecture's download (and Maven's, Architecture: all) at once, each into a
    # folder of its own; the unpacking below finds them there.
    mapfile -t maven_pkgs < <(java_maven_closure)
    ((${#maven_pkgs[@]} > 20)) || die "could not resolve Maven's packages; see $LOG_DIR/seed-apt.log"
    local -a pids=()
    for arch in "${SEED_ARCHES[@]}"; do
        java_fetch "${DEB_ARCH[$arch]}" busybox-static "${JAVA_JRE_PACKAGES[@]}" \
            "${JAVA_JDK_PACKAGES[@]}" &
        pids+=($!)
    done
    java_fetch all "${maven_pkgs[@]}" &
    pids+=($!)
    wait_all "${pids[@]}" || die "downloading the Java packages failed (see the messages above)"
    for arch in "${SEED_ARCHES[@]}"; do
        deb_arch=${DEB_ARCH[$arch]}
        busybox_root "$arch" "$ctx/jre-$arch"
        java_unpack_all "$deb_arch" "$ctx/jre-$arch" "${JAVA_JRE_PACKAGES[@]}"
        java_unpack_all "$deb_arch" "$ctx/jdk-$arch" "${JAVA_JDK_PACKAGES[@]}"
        jvm=/usr/lib/jvm/java-17-openjdk-$deb_arch
        [[ -x $ctx/jre-$arch$jvm/bin/java ]] || die "no $jvm/bin/java in openjdk-17-jre-headless:$deb_arch"
        # The official images' JAVA_HOME; Debian's maintainer scripts would have made the
        # /usr/bin alternatives and the CDS archive (the JVM runs without one, a bit slower).
        mkdir -p "$ctx/jre-$arch/opt/java" "$ctx/jre-$arch/etc/ssl/certs/java"
        ln -s "$jvm" "$ctx/jre-$arch/opt/java/openjdk"
        rm -rf "$ctx/jre-$arch/usr/share/doc" "$ctx/jre-$arch/usr/share/man" \
            "$ctx/jre-$arch/usr/share/lintian" "$ctx/jdk-$arch/usr/share/doc" \
            "$ctx/jdk-$arch/usr/share/man" "$ctx/jdk-$arch/usr/share/lintian"
    done
    "$ctx/jre-amd64/bin/busybox" --list >"$SEED_DIR/busybox.applets"
    for arch in "${SEED_ARCHES[@]}"; do
        busybox_links "$ctx/jre-$arch" "$SEED_DIR/busybox.applets"
    done

    java_unpack_all all "$ctx/maven" "${maven_pkgs[@]}"
    # The alternatives symlink maven's postinst would make.
    mkdir -p "$ctx/maven/usr/bin"
    ln -s /usr/share/maven/bin/mvn "$ctx/maven/usr/bin/mvn"
    rm -rf "$ctx/maven/usr/share/doc" "$ctx/maven/usr/share/man" "$ctx/maven/usr/share/lintian"

    version=$(dpkg-deb -f "$(compgen -G "$DEB_CACHE/amd64/openjdk-17-jre-headless_*.deb" | head -n1)" Version)
    version="jdk-${version%%-*}"
    for target in jre jdk maven; do
        case $target in
            jre) image=eclipse-temurin:17-jre ;;
            jdk) image=eclipse-temurin:17-jdk ;;
            maven) image=maven:3-eclipse-temurin-17 ;;
        esac
        java_build_seed "$target" "$image" "$ctx" --build-arg "JAVA_VERSION=$version"
    done
    rm -rf "$ctx"
    JAVA_SEEDED=1
}

# java_build_seed TARGET NAME:TAG CONTEXT [BUILD ARGS...]: like build_seed, for one target
# of scripts/teststack/java/Dockerfile.
java_build_seed() {
    local target=$1 image=$2 ctx=$3
    shift 3
    log "seed: building and pushing $MIRROR/$image for $PLATFORMS (log: $LOG_DIR/seed-java-$target.log)"
    if ! docker buildx build --builder default --network host \
            --platform "$PLATFORMS" "$PUSH" --progress=plain --target "$target" \
            -f "$HELPERS/java/Dockerfile" -t "$MIRROR/$image" "$@" "$ctx" \
            >"$LOG_DIR/seed-java-$target.log" 2>&1; then
        tail -n 30 "$LOG_DIR/seed-java-$target.log" >&2
        die "building $MIRROR/$image failed; see $LOG_DIR/seed-java-$target.log"
    fi
}
