"""Java: compile and package once on the build platform, run the jar on a per-platform JRE.

Bytecode is the same on every platform, so Maven or the Gradle wrapper runs once, natively,
in a ``FROM --platform=$BUILDPLATFORM`` stage; the only per-platform work is copying one jar
into ``eclipse-temurin:<version>-jre``. Nothing runs under emulation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from . import tree as source
from .base import Detection, Option, OptionError, Plugin, Rendered
from .dockerfile import dockerfile_quote, dockerignore, find_control_char, mirror_image
from .secrets import scope_arg, secret_mount, secret_option

JAVA_VERSIONS = ("11", "17", "21")  # Temurin LTS lines with -jdk, -jre and maven images
MAVEN_IMAGE = "maven:3-eclipse-temurin-{version}"
JDK_IMAGE = "eclipse-temurin:{version}-jdk"
JRE_IMAGE = "eclipse-temurin:{version}-jre"
DEFAULT_ARTIFACT = {"maven": "target/*.jar", "gradle": "build/libs/*.jar"}

# Path segments that cannot start with "." (no "..", no hidden folders) or "-"; "*" and "?"
# are globs the build step expands. No spaces: the pattern is split on whitespace in sh.
ARTIFACT_PATTERN = r"(?:[A-Za-z0-9_*?][A-Za-z0-9_.*?-]*/)*[A-Za-z0-9_*?][A-Za-z0-9_.*?-]*\.jar"
# http(s) with a host, or file:///path. No user info (a password would be stored in the
# Dockerfile), no query, and none of & < > ' " $ \ : the value is written into a settings.xml,
# where Maven would also interpolate ${...}.
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
_PATH = r"(?:/[A-Za-z0-9._~!()*+,;=%:-]*)*"
HTTP_URL_PATTERN = rf"https?://{_HOST}{_PATH}"
MIRROR_PATTERN = rf"(?:https?://{_HOST}|file://){_PATH}"
URL_MESSAGE = (
    "must be an http(s) URL{extra} without user name, password, query or the characters "
    "& < > ' \" $ \\ (e.g. https://nexus.example.com/repository/maven-public/)"
)

DOCKERIGNORE = dockerignore("java", "*.iml", ".gradle", "**/target", "**/build")

# Shell run in the build stage (a quoted heredoc: BuildKit expands nothing in it; option values
# arrive as ARG environment variables). Picks exactly one jar so a wrong pattern fails loudly.
PICK_JAR = """\
found=0
# Unquoted on purpose: the glob expands here (the option allows no whitespace).
for f in $ARTIFACT; do
    case "$f" in
        *-plain.jar | *-sources.jar | *-javadoc.jar | *-tests.jar) continue ;;
        original-*.jar | */original-*.jar) continue ;;
    esac
    [ -f "$f" ] || continue
    found=$((found + 1))
    jar=$f
done
if [ "$found" -ne 1 ]; then
    echo "crossport: $found runnable jars match $ARTIFACT, need 1: set the artifact option" >&2
    exit 1
fi
mkdir -p /out
cp -- "$jar" /out/app.jar
"""

_XML_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_PARENT_RE = re.compile(r"<parent>.*?</parent>", re.DOTALL)
_ARTIFACT_ID_RE = re.compile(r"<artifactId>\s*([^<\s]+)\s*</artifactId>")
_MODULE_RE = re.compile(r"<module>\s*([^<\s]+)\s*</module>")
# Where Maven projects state their Java level, most specific first.
_POM_VERSION_RES = [
    re.compile(rf"<{tag}>\s*([^<\s]+)\s*</{tag}>")
    for tag in (
        "maven.compiler.release",
        "release",
        "java.version",
        "maven.compiler.target",
        "maven.compiler.source",
    )
]
_GRADLE_VERSION_RES = [
    re.compile(r"JavaLanguageVersion\.of\(\s*['\"]?([0-9]+)['\"]?\s*\)"),
    re.compile(r"JavaVersion\.VERSION_((?:1_)?[0-9]+)\b"),
    re.compile(r"(?:source|target)Compatibility\s*=\s*['\"]?([0-9][0-9.]*)['\"]?"),
]


class JavaPlugin(Plugin):
    key = "java"
    label = "Java"
    error_patterns = (
        r"^\S+\.java:\d+: error: ",  # javac
        r"^\[ERROR\] \S+\.java:\[\d+,\d+\] ",  # maven's compiler plugin
        r"^e: ",  # gradle's Kotlin compiler
    )
    options = (
        Option(
            name="build_tool",
            label="Build tool",
            help="maven (pom.xml, built with the image's Maven 3) or gradle "
            "(the project's ./gradlew).",
            default="maven",
            choices=("maven", "gradle"),
        ),
        Option(
            name="java_version",
            label="Java version",
            help="JDK used to build and JRE the image runs on (eclipse-temurin).",
            default="17",
            choices=JAVA_VERSIONS,
        ),
        Option(
            name="jvm_options",
            label="JVM options",
            help="Options for the java launcher, e.g. -Xmx256m -XX:+UseSerialGC "
            "(set as JDK_JAVA_OPTIONS; can be overridden when the container starts).",
            default="",
            max_length=1000,
            pattern=r"-.*",
            pattern_message='must be JVM options starting with "-", e.g. -Xmx256m',
        ),
        Option(
            name="maven_mirror",
            label="Maven mirror",
            help="URL of an internal Maven repository that mirrors all others (Maven only). "
            "Empty: the build image's own settings (Maven Central).",
            default="",
            max_length=500,
            pattern=MIRROR_PATTERN,
            pattern_message=URL_MESSAGE.format(extra=" or file:///path"),
        ),
        Option(
            name="maven_settings_url",
            label="Maven settings URL",
            help="http(s) URL of a settings.xml the build uses with mvn -s, fetched by the "
            "builder (Maven only; instead of Maven mirror).",
            default="",
            max_length=500,
            pattern=HTTP_URL_PATTERN,
            pattern_message=URL_MESSAGE.format(extra=""),
        ),
        secret_option(
            "maven_settings_secret",
            "Maven settings secret",
            "a Maven settings.xml (servers with passwords, mirrors) that mvn reads as "
            "/root/.m2/settings.xml (Maven only; instead of mirror and settings URL)",
        ),
        Option(
            name="artifact",
            label="Jar to run",
            help="Path (glob) of the runnable jar the build makes. Empty: target/*.jar for "
            "Maven, build/libs/*.jar for Gradle (-plain, -sources and -javadoc jars skipped).",
            default="",
            pattern=ARTIFACT_PATTERN,
            pattern_message=(
                'must be a relative path to a .jar, globs allowed, e.g. "app/target/*.jar"'
            ),
        ),
    )

    def clean_options(self, raw: Mapping[str, object]) -> dict[str, str]:
        opts = super().clean_options(raw)
        if opts["build_tool"] == "gradle":
            for name in ("maven_mirror", "maven_settings_url", "maven_settings_secret"):
                if opts[name]:
                    raise OptionError(name, "is only used when the build tool is maven")
        given = [n for n in ("maven_mirror", "maven_settings_url") if opts[n]]
        if given and opts["maven_settings_secret"]:
            raise OptionError(
                given[0], "set either this or maven_settings_secret (the settings can hold it)"
            )
        if opts["maven_mirror"] and opts["maven_settings_url"]:
            raise OptionError(
                "maven_mirror", "set either this or maven_settings_url (the settings can hold it)"
            )
        return opts

    def detect(self, tree: Path) -> Detection | None:
        pom = source.read_text(tree, "pom.xml")
        names = set(source.list_dir(tree))
        gradle_files = sorted(
            names & {"build.gradle", "build.gradle.kts", "settings.gradle", "settings.gradle.kts"}
        )
        has_wrapper = "gradlew" in names and not source.is_dir(tree, "gradlew")
        options: dict[str, str] = {}
        evidence: list[str] = []
        if pom is not None:
            score = 0.9
            options["build_tool"] = "maven"
            self._inspect_pom(pom, options, evidence)
            if "mvnw" in names:
                evidence.append("mvnw found: the build uses the image's Maven 3 instead")
            if has_wrapper and gradle_files:
                evidence.append("a Gradle build is here too; set build_tool to gradle to use it")
        elif gradle_files:
            options["build_tool"] = "gradle"
            shown = ", ".join(gradle_files)
            if has_wrapper:
                score = 0.9
                evidence.append(f"Gradle wrapper (gradlew) and {shown}")
            else:
                score = 0.4
                evidence.append(f"{shown} without gradlew: commit the Gradle wrapper to build")
            script = next((n for n in gradle_files if n.startswith("build.")), "")
            text = source.read_text(tree, script) if script else None
            if text is not None:
                self._suggest_version(
                    _first_match(_GRADLE_VERSION_RES, text), script, options, evidence
                )
        else:
            return None
        return Detection(score=score, options=options, evidence=evidence)

    def render(self, options: Mapping[str, str], *, mirror: str = "") -> Rendered:
        # Cleaning again is idempotent and guarantees that build_tool and java_version (which
        # go into FROM lines unquoted) are among the choices even if a caller skipped it.
        opts = self.clean_options(options)
        version, tool = opts["java_version"], opts["build_tool"]
        runtime = mirror_image(JRE_IMAGE.format(version=version), mirror)
        artifact = opts["artifact"] or DEFAULT_ARTIFACT[tool]
        if tool == "maven":
            build = self._maven_stage(
                opts, mirror_image(MAVEN_IMAGE.format(version=version), mirror)
            )
        else:
            build = self._gradle_stage(mirror_image(JDK_IMAGE.format(version=version), mirror))
        dockerfile = f"""\
# Generated by Crossport (java plugin). Compiles and packages once on the build platform
# (bytecode runs everywhere); only the JRE stage is per platform: no emulation.
{build}ARG ARTIFACT={dockerfile_quote(artifact)}
RUN <<'EOF'
set -eu
{PICK_JAR}EOF

FROM {runtime}
WORKDIR /app
COPY --link --from=build /out/app.jar /app/app.jar
{self._jvm_options(opts["jvm_options"])}USER 65532:65532
ENTRYPOINT ["java", "-jar", "/app/app.jar"]
"""
        return Rendered(dockerfile=dockerfile, dockerignore=DOCKERIGNORE)

    def _jvm_options(self, value: str) -> str:
        if not value:
            return ""  # an empty JDK_JAVA_OPTIONS would still make java print a NOTE line
        return f"""\
# Read by the java launcher itself (JDK 9+): no shell, so no word splitting, globbing or
# eval of the value; only java reads it (JAVA_TOOL_OPTIONS would reach jcmd etc. too), it
# cannot replace -jar, and `docker run -e JDK_JAVA_OPTIONS=...` overrides it.
ARG JVM_OPTIONS={dockerfile_quote(value)}
ENV JDK_JAVA_OPTIONS="$JVM_OPTIONS"
"""

    def _maven_stage(self, opts: Mapping[str, str], image: str) -> str:
        # The cache mount keeps downloaded dependencies between builds (so copying the whole
        # tree at once costs nothing); "locked" because Maven's local repository is not safe
        # for two builds writing at once.
        settings = ""
        if opts["maven_settings_url"]:
            # Written as is: its pattern allows no whitespace, quote, "$" or backslash, so it is
            # one word BuildKit does not expand, and hadolint sees a URL (no DL3020). BuildKit
            # fetches it itself (not a RUN step), and it stays in the build stage.
            url = opts["maven_settings_url"]
            settings = f"ADD {url} /tmp/crossport/settings.xml\n"
        secret_arg = secret = ""
        if opts["maven_settings_secret"]:  # Maven's user settings, read without -s
            secret_arg = scope_arg()
            mount = secret_mount(opts["maven_settings_secret"], "/root/.m2/settings.xml")
            secret = f" \\\n    {mount}"
        return f"""\
FROM --platform=$BUILDPLATFORM {image} AS build
WORKDIR /src
COPY . .
{settings}ARG MAVEN_MIRROR={dockerfile_quote(opts["maven_mirror"])}
{secret_arg}RUN --mount=type=cache,target=/root/.m2/repository,sharing=locked{secret} <<'EOF'
set -eu
set --
if [ -f /tmp/crossport/settings.xml ]; then
    set -- -s /tmp/crossport/settings.xml
elif [ -n "$MAVEN_MIRROR" ]; then
    # Maven takes a mirror only from a settings file; the option's pattern keeps XML
    # special characters out of the URL.
    mkdir -p /tmp/crossport
    printf '%s\\n' '<settings><mirrors><mirror><id>crossport-mirror</id><mirrorOf>*</mirrorOf>' \\
        "<url>$MAVEN_MIRROR</url></mirror></mirrors></settings>" >/tmp/crossport/settings.xml
    set -- -s /tmp/crossport/settings.xml
fi
mvn --batch-mode --no-transfer-progress -DskipTests "$@" package
EOF

"""

    def _gradle_stage(self, image: str) -> str:
        # (The blank line after each heredoc above is for hadolint, whose parser needs it.)
        # sh ./gradlew: works when a checkout lost the executable bit. The cache mount keeps
        # the wrapper's Gradle distribution and dependencies between builds.
        return f"""\
FROM --platform=$BUILDPLATFORM {image} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/root/.gradle,sharing=locked \\
    sh ./gradlew --no-daemon --console=plain assemble

"""

    def _inspect_pom(self, pom: str, options: dict[str, str], evidence: list[str]) -> None:
        text = _PARENT_RE.sub("", _XML_COMMENT_RE.sub("", pom))
        artifact_id = _ARTIFACT_ID_RE.search(text)
        evidence.append(
            f"pom.xml declares artifactId {_shown(artifact_id.group(1))}"
            if artifact_id
            else "pom.xml found (no artifactId)"
        )
        modules = _MODULE_RE.findall(text)
        if modules:
            shown = ", ".join(_shown(m, 40) for m in modules[:10])
            evidence.append(
                f"multi-module build ({shown}): set artifact to the runnable module's jar, "
                "e.g. app/target/*.jar"
            )
        self._suggest_version(_first_match(_POM_VERSION_RES, text), "pom.xml", options, evidence)

    def _suggest_version(
        self, found: str | None, where: str, options: dict[str, str], evidence: list[str]
    ) -> None:
        if found is None:
            evidence.append(f"{where} states no Java version; using the default")
            return
        level = _java_level(found)
        if level is None:
            evidence.append(
                f"{where}: Java version {_shown(found)} not understood; using the default"
            )
            return
        # The oldest supported JDK that can build (and run) that level.
        fit = next((v for v in JAVA_VERSIONS if int(v) >= level), None)
        if fit is None:
            evidence.append(
                f"{where} targets Java {level}, newer than the newest offered ({JAVA_VERSIONS[-1]})"
            )
            return
        options["java_version"] = fit
        evidence.append(f"{where} targets Java {_shown(found)}: java_version {fit}")


def _first_match(patterns: list[re.Pattern[str]], text: str) -> str | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return match.group(1)
    return None


def _java_level(text: str) -> int | None:
    """ "1.8", "8", "1_8", "17" -> 8, 8, 8, 17; None for property references and the like."""
    match = re.fullmatch(r"(?:1[._])?([0-9]{1,3})(?:\.[0-9]+)*", text)
    return int(match.group(1)) if match else None


def _shown(text: str, limit: int = 80) -> str:
    """A detected string made safe to show: no control characters, bounded length."""
    cleaned = "".join("?" if find_control_char(ch) else ch for ch in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."
