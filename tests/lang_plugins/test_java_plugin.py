from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dockerfile_helpers import arg_values, parse
from lang_plugins import PLUGINS, detect
from lang_plugins.base import OptionError
from lang_plugins.java import JavaPlugin

Golden = Callable[[str, str], None]
MakeTree = Callable[[dict[str, str]], Path]

MAVEN = ["FROM", "WORKDIR", "COPY", "ARG", "RUN", "ARG", "RUN"]
GRADLE = ["FROM", "WORKDIR", "COPY", "RUN", "ARG", "RUN"]
RUNTIME = ["FROM", "WORKDIR", "COPY", "USER", "ENTRYPOINT"]
JVM_OPTS = ["ARG", "ENV"]

# Values a user might type to break out of an ARG line. Accepted ones must stay inside it.
HOSTILE = [
    '"',
    "\\",
    "$HOME",
    "${HOME}",
    "'",
    "`id`",
    "$(id)",
    '" && rm -rf / #',
    '-X "a"\\',
    "ARG X=1",
    '\\\\\\"',
    "EOF",
    "-Dmsg=héllo中",
]
CONTROL = ["\nRUN rm -rf /", "a\x00b", "a\rb", "-Xmx1g\t-Xss1m", "\x7f", "x\u2028RUN id"]
URL_OPTIONS = ["maven_mirror", "maven_settings_url"]
POM = """\
<?xml version="1.0"?>
<project>
  <!-- <artifactId>commented-out</artifactId> -->
  <parent>
    <groupId>org.springframework.boot</groupId>
    <artifactId>spring-boot-starter-parent</artifactId>
  </parent>
  <artifactId>shop</artifactId>
  <properties>
    <java.version>21</java.version>
  </properties>
</project>
"""


def java() -> JavaPlugin:
    plugin = PLUGINS["java"]
    assert isinstance(plugin, JavaPlugin)
    return plugin


def render(raw: dict[str, object], mirror: str = "") -> str:
    plugin = java()
    return plugin.render(plugin.clean_options(raw), mirror=mirror).dockerfile


def rejected(raw: dict[str, object]) -> str:
    with pytest.raises(OptionError) as info:
        java().clean_options(raw)
    return info.value.option


# --- registry entry and options ---


def test_registered_under_java() -> None:
    assert (java().key, java().label) == ("java", "Java")
    assert [o.name for o in java().options] == [
        "build_tool",
        "java_version",
        "jvm_options",
        "maven_mirror",
        "maven_settings_url",
        "maven_settings_secret",
        "artifact",
    ]


def test_defaults() -> None:
    assert java().clean_options({}) == {
        "build_tool": "maven",
        "java_version": "17",
        "jvm_options": "",
        "maven_mirror": "",
        "maven_settings_url": "",
        "maven_settings_secret": "",
        "artifact": "",
    }


@pytest.mark.parametrize("value", ["ant", "Maven", "sbt", "maven gradle"])
def test_build_tool_choices(value: str) -> None:
    assert rejected({"build_tool": value}) == "build_tool"


@pytest.mark.parametrize("value", ["8", "1.8", "17.0", "22", "latest", "17-jre", "17 AS x"])
def test_java_version_choices(value: str) -> None:
    assert rejected({"java_version": value}) == "java_version"


@pytest.mark.parametrize(
    "value",
    [
        "https://nexus.example.com/repository/maven-public/",
        "http://127.0.0.1:8081/repository/central",
        "https://[::1]:8443/m2",
        "https://repo.example.com",
        "file:///usr/share/maven-repo",
        "https://host/path/with%20escape/~user/a;b=c",
    ],
)
def test_maven_mirror_accepts_urls(value: str) -> None:
    assert java().clean_options({"maven_mirror": value})["maven_mirror"] == value


@pytest.mark.parametrize(
    "value",
    [
        "nexus.example.com",
        "ftp://host/repo",
        "https://user:secret@host/repo",
        "https://user@host/repo",
        "https://host/repo?x=1",
        "https://host/repo#frag",
        "https://host/a&b",
        "https://host/<x>",
        "https://host/${env.HOME}",
        "https://host/a b",
        "https://-host/",
        "file://host/path",
        "https://",
    ],
)
def test_maven_mirror_rejects_anything_else(value: str) -> None:
    assert rejected({"maven_mirror": value}) == "maven_mirror"


def test_settings_url_is_http_only() -> None:
    url = "https://config.example.com/maven/settings.xml"
    assert java().clean_options({"maven_settings_url": url})["maven_settings_url"] == url
    assert rejected({"maven_settings_url": "file:///etc/settings.xml"}) == "maven_settings_url"
    assert rejected({"maven_settings_url": "https://u:p@h/s.xml"}) == "maven_settings_url"


def test_mirror_and_settings_url_exclude_each_other() -> None:
    raw = {"maven_mirror": "https://m.example.com/r", "maven_settings_url": "https://s/x.xml"}
    assert rejected(raw) == "maven_mirror"


@pytest.mark.parametrize("name", URL_OPTIONS)
def test_maven_options_rejected_for_gradle(name: str) -> None:
    with pytest.raises(OptionError) as info:
        java().clean_options({"build_tool": "gradle", name: "https://m.example.com/r"})
    assert info.value.option == name
    assert "maven" in info.value.message


@pytest.mark.parametrize(
    "value", ["target/*.jar", "app/target/app-*.jar", "build/libs/x?.jar", "app.jar", "*.jar"]
)
def test_artifact_accepts_relative_jar_globs(value: str) -> None:
    assert java().clean_options({"artifact": value})["artifact"] == value


@pytest.mark.parametrize(
    "value",
    [
        "/abs/app.jar",
        "../app.jar",
        "target/../../x.jar",
        ".hidden/app.jar",
        "-x.jar",
        "target/app.war",
        "target/*",
        "target/a b.jar",
        "target/[ab].jar",
        "target//a.jar",
        "target/$x.jar",
        "target/é.jar",
    ],
)
def test_artifact_rejects_anything_else(value: str) -> None:
    assert rejected({"artifact": value}) == "artifact"


@pytest.mark.parametrize("value", ["Xmx256m", "x", "; id"])
def test_jvm_options_start_with_a_dash(value: str) -> None:
    assert rejected({"jvm_options": value}) == "jvm_options"


def test_jvm_options_max_length() -> None:
    long = "-D" + "x" * 998
    assert java().clean_options({"jvm_options": long})["jvm_options"] == long
    assert rejected({"jvm_options": long + "x"}) == "jvm_options"


# --- rendering ---


def test_render_maven_mirror_golden(golden: Golden) -> None:
    text = render(
        {
            "java_version": "21",
            "jvm_options": '-Xmx256m -Dgreeting="hello world"',
            "maven_mirror": "file:///usr/share/maven-repo",
            "artifact": "app/target/app-*.jar",
        },
        mirror="localhost:5000/library",
    )
    golden("java_maven_mirror.Dockerfile", text)


def test_render_maven_settings_url_golden(golden: Golden) -> None:
    text = render({"maven_settings_url": "https://config.example.com/maven/settings.xml"})
    golden("java_maven_settings_url.Dockerfile", text)


def test_render_gradle_golden(golden: Golden) -> None:
    golden("java_gradle.Dockerfile", render({"build_tool": "gradle", "java_version": "11"}))


def test_render_default_structure() -> None:
    commands = parse(render({}))
    assert [c.cmd for c in commands] == MAVEN + RUNTIME
    build, runtime = (c for c in commands if c.cmd == "FROM")
    assert build.flags == ("--platform=$BUILDPLATFORM",)
    assert build.value == ("maven:3-eclipse-temurin-17", "AS", "build")
    assert runtime.flags == ()
    assert runtime.value == ("eclipse-temurin:17-jre",)
    assert arg_values(commands) == {"MAVEN_MIRROR": "", "ARTIFACT": "target/*.jar"}
    maven_run = commands[4]
    assert maven_run.flags == ("--mount=type=cache,target=/root/.m2/repository,sharing=locked",)
    assert "mvn --batch-mode" in maven_run.heredocs[0].content
    assert commands[-2].value == ("65532:65532",)
    assert commands[-1].json and commands[-1].value == ("java", "-jar", "/app/app.jar")
    # No JDK_JAVA_OPTIONS at all when empty: java would print a NOTE for an empty one.
    assert "JDK_JAVA_OPTIONS" not in render({})


def test_render_gradle_structure() -> None:
    commands = parse(render({"build_tool": "gradle", "java_version": "21"}, mirror="m:5000/lib"))
    assert [c.cmd for c in commands] == GRADLE + RUNTIME
    images = [c.value[0] for c in commands if c.cmd == "FROM"]
    assert images == ["m:5000/lib/eclipse-temurin:21-jdk", "m:5000/lib/eclipse-temurin:21-jre"]
    assert commands[0].flags == ("--platform=$BUILDPLATFORM",)
    assert "./gradlew" in commands[3].original
    assert arg_values(commands) == {"ARTIFACT": "build/libs/*.jar"}


def test_render_settings_url_structure() -> None:
    url = "https://config.example.com/s.xml"
    commands = parse(render({"maven_settings_url": url}))
    assert [c.cmd for c in commands] == MAVEN[:3] + ["ADD"] + MAVEN[3:] + RUNTIME
    assert commands[3].value == (url, "/tmp/crossport/settings.xml")


def test_render_without_syntax_directive_and_only_build_stage_native() -> None:
    text = render({})
    assert not any("syntax" in line for line in text.splitlines()[:3])
    froms = [c for c in parse(text) if c.cmd == "FROM"]
    assert [bool(c.flags) for c in froms] == [True, False]


def test_render_cleans_options_itself() -> None:
    # java_version and build_tool land unquoted in FROM lines.
    with pytest.raises(OptionError) as info:
        java().render({"java_version": "17 AS x\nRUN id"})
    assert info.value.option == "java_version"
    with pytest.raises(OptionError):
        java().render({"build_tool": "gradle", "maven_mirror": "https://m/r"})


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_jvm_options_stay_inside_one_arg(value: str) -> None:
    value = "-" + value
    commands = parse(render({"jvm_options": value}))
    assert [c.cmd for c in commands] == MAVEN + RUNTIME[:3] + JVM_OPTS + RUNTIME[3:]
    assert arg_values(commands)["JVM_OPTIONS"] == value
    env = next(c for c in commands if c.cmd == "ENV")
    assert env.value == ("JDK_JAVA_OPTIONS", '"$JVM_OPTIONS"')
    # Everything but the ARG line is what a plain "-x" renders.
    plain = parse(render({"jvm_options": "-x"}))
    changed = [a for a, b in zip(plain, commands, strict=True) if a.original != b.original]
    assert len(changed) == 1 and changed[0].original == 'ARG JVM_OPTIONS="-x"'


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("name", ["build_tool", "java_version", "artifact", *URL_OPTIONS])
def test_hostile_values_rejected_by_strict_options(name: str, value: str) -> None:
    assert rejected({name: value}) == name
    if not value.isalnum():  # "https://h/EOF" is a fine URL
        assert rejected({name: "https://h/" + value}) == name


@pytest.mark.parametrize("value", CONTROL)
@pytest.mark.parametrize("name", [o.name for o in JavaPlugin.options])
def test_control_characters_rejected(name: str, value: str) -> None:
    assert rejected({name: value}) == name


def test_dockerignore_keeps_build_outputs_out() -> None:
    lines = java().render(java().clean_options({})).dockerignore.splitlines()
    for pattern in [".git", "Dockerfile", ".dockerignore", "**/target", "**/build", ".gradle"]:
        assert pattern in lines


# --- detection ---


def test_detect_maven(make_tree: MakeTree) -> None:
    found = java().detect(make_tree({"pom.xml": POM, "src/main/java/A.java": "class A {}"}))
    assert found is not None
    assert found.score == 0.9
    assert found.options == {"build_tool": "maven", "java_version": "21"}
    assert "pom.xml declares artifactId shop" in found.evidence
    assert "pom.xml targets Java 21: java_version 21" in found.evidence
    assert java().clean_options(found.options)["java_version"] == "21"


def test_detect_through_registry(make_tree: MakeTree) -> None:
    result = detect(make_tree({"pom.xml": POM}))
    assert result is not None
    assert result[0] is java()


@pytest.mark.parametrize(
    ("properties", "version"),
    [
        ("<maven.compiler.release>17</maven.compiler.release>", "17"),
        ("<maven.compiler.source>1.8</maven.compiler.source>", "11"),
        ("<maven.compiler.target>11</maven.compiler.target>", "11"),
        ("<java.version>19</java.version>", "21"),
        (
            "<java.version>21</java.version><maven.compiler.release>17</maven.compiler.release>",
            "17",
        ),
        ("<maven.compiler.release>${jdk}</maven.compiler.release>", None),
        ("<maven.compiler.release>25</maven.compiler.release>", None),
        ("", None),
    ],
)
def test_detect_pom_java_version(make_tree: MakeTree, properties: str, version: str | None) -> None:
    pom = f"<project><artifactId>a</artifactId><properties>{properties}</properties></project>"
    found = java().detect(make_tree({"pom.xml": pom}))
    assert found is not None
    assert found.options.get("java_version") == version
    assert found.evidence[-1]  # every outcome is explained


def test_detect_multi_module_pom(make_tree: MakeTree) -> None:
    pom = "<project><artifactId>p</artifactId><modules><module>core</module>"
    pom += "<module>app</module></modules></project>"
    found = java().detect(make_tree({"pom.xml": pom}))
    assert found is not None
    assert any("multi-module build (core, app)" in line for line in found.evidence)


def test_detect_gradle_wrapper(make_tree: MakeTree) -> None:
    tree = make_tree(
        {
            "gradlew": "#!/bin/sh\n",
            "settings.gradle.kts": 'rootProject.name = "app"\n',
            "build.gradle.kts": "java { toolchain { languageVersion = JavaLanguageVersion.of(21) } }",
        }
    )
    found = java().detect(tree)
    assert found is not None
    assert found.score == 0.9
    assert found.options == {"build_tool": "gradle", "java_version": "21"}
    assert "Gradle wrapper (gradlew) and build.gradle.kts, settings.gradle.kts" in found.evidence


@pytest.mark.parametrize(
    ("script", "version"),
    [
        ("sourceCompatibility = '17'", "17"),
        ("sourceCompatibility = JavaVersion.VERSION_1_8", "11"),
        ("java { targetCompatibility = JavaVersion.VERSION_21 }", "21"),
        ("plugins { id 'java' }", None),
    ],
)
def test_detect_gradle_java_version(make_tree: MakeTree, script: str, version: str | None) -> None:
    found = java().detect(make_tree({"gradlew": "#!/bin/sh\n", "build.gradle": script}))
    assert found is not None
    assert found.options.get("java_version") == version


def test_detect_gradle_without_wrapper_is_unsure(make_tree: MakeTree) -> None:
    found = java().detect(make_tree({"build.gradle": "plugins { id 'java' }"}))
    assert found is not None
    assert found.score < 0.5
    assert any("commit the Gradle wrapper" in line for line in found.evidence)


def test_detect_prefers_pom_and_mentions_gradle_and_mvnw(make_tree: MakeTree) -> None:
    tree = make_tree(
        {"pom.xml": POM, "mvnw": "", "gradlew": "", "build.gradle": "", "settings.gradle": ""}
    )
    found = java().detect(tree)
    assert found is not None
    assert found.options["build_tool"] == "maven"
    assert any(line.startswith("mvnw found") for line in found.evidence)
    assert any("set build_tool to gradle" in line for line in found.evidence)


def test_detect_nothing_java(make_tree: MakeTree) -> None:
    assert java().detect(make_tree({"README.md": "hi", "gradlew": "#!/bin/sh\n"})) is None
    assert java().detect(make_tree({"src/pom.xml": POM})) is None


def test_detect_does_not_follow_symlinks_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "pom.xml").write_text(POM)
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "pom.xml").symlink_to(outside / "pom.xml")
    assert java().detect(tree) is None


def test_detect_evidence_has_no_control_characters(make_tree: MakeTree) -> None:
    pom = "<project><artifactId>a\x1b[31mred</artifactId></project>"
    found = java().detect(make_tree({"pom.xml": pom}))
    assert found is not None
    assert "pom.xml declares artifactId a?[31mred" in found.evidence


def test_sample_app_is_detected() -> None:
    sample = Path(__file__).parents[1] / "e2e" / "samples" / "java"
    found = java().detect(sample)
    assert found is not None
    assert found.options == {"build_tool": "maven", "java_version": "17"}
