"""Secret options: each plugin mounts the named secret on its dependency step only, in the
stage on $BUILDPLATFORM, right after ARG CROSSPORT_TEAM_SCOPE; the name is checked. Python's
emulation fallback (packages with compiled code and no wheel for the target, installed on the
target platform) reads the same private index, so it mounts the secret too."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dockerfile_helpers import parse
from lang_plugins import get_plugin
from lang_plugins.base import OptionError
from lang_plugins.secrets import SCOPE_ARG, secret_mount

Golden = Callable[[str, str], None]
MIRROR = "localhost:5000/library"
CASES = {
    # plugin, options, the golden file, where the secret goes, what the step runs
    "go": (
        {"netrc_secret": "gitNetrc", "goprivate": "git.corp.example.com/*,example.org/acme"},
        "go_private_modules.Dockerfile",
        "/root/.netrc",
        "go mod download",
    ),
    "python": (
        {"pip_secret": "pip-conf"},
        "python_pip_secret.Dockerfile",
        "/etc/pip.conf",
        "python - ",
    ),
    "java": (
        {"maven_settings_secret": "m2_settings"},
        "java_maven_settings_secret.Dockerfile",
        "/root/.m2/settings.xml",
        "mvn",
    ),
    "static": (
        {"build": "npm", "npmrc_secret": "npmrc"},
        "static_npmrc_secret.Dockerfile",
        "/root/.npmrc",
        "npm ci",
    ),
}
SECRET_OPTION = {
    "go": "netrc_secret",
    "python": "pip_secret",
    "java": "maven_settings_secret",
    "static": "npmrc_secret",
}


@pytest.mark.parametrize("key", CASES)
def test_the_secret_is_mounted_on_the_dependency_step_only(key: str, golden: Golden) -> None:
    options, name, target, runs = CASES[key]
    plugin = get_plugin(key)
    cleaned = plugin.clean_options(options)
    text = plugin.render(cleaned, mirror=MIRROR).dockerfile
    golden(name, text)
    secret = options[SECRET_OPTION[key]]
    assert plugin.secret_names(cleaned) == [secret]
    commands = parse(text)
    stage = ""
    mounting = []
    for index, command in enumerate(commands):
        if command.cmd == "FROM":
            stage = command.original
        if any("type=secret" in flag for flag in command.flags):
            mounting.append(stage)
            assert f"--mount=type=secret,id={secret},target={target},required=true" in command.flags
            assert commands[index - 1].cmd == "ARG" and commands[index - 1].value == (SCOPE_ARG,)
            if "--platform=$BUILDPLATFORM" in stage:
                assert runs in command.original
    assert "--platform=$BUILDPLATFORM" in mounting[0]
    if key == "python":  # resolve (once), deps (per platform), the target-platform installer
        assert [stage.split()[-1] for stage in mounting] == ["resolve", "deps", "fallback"]
    assert len(mounting) == text.count(SCOPE_ARG) == (3 if key == "python" else 1)


@pytest.mark.parametrize("key", CASES)
def test_without_the_option_nothing_changes(key: str) -> None:
    plugin = get_plugin(key)
    options = {k: v for k, v in CASES[key][0].items() if k != SECRET_OPTION[key]}
    text = plugin.render(plugin.clean_options(options), mirror=MIRROR).dockerfile
    assert "type=secret" not in text and SCOPE_ARG not in text
    assert plugin.secret_names(plugin.clean_options(options)) == []


@pytest.mark.parametrize("key", CASES)
@pytest.mark.parametrize(
    "name", ["1x", "a b", "a,target=/etc/passwd", "a\nRUN id", "x" * 65, "$X", "a=b", "ä", "-a"]
)
def test_secret_names_are_checked(key: str, name: str) -> None:
    with pytest.raises(OptionError) as info:
        get_plugin(key).clean_options({SECRET_OPTION[key]: name})
    assert info.value.option == SECRET_OPTION[key]


def test_the_mount_itself_refuses_what_the_grammar_refuses() -> None:
    with pytest.raises(ValueError):
        secret_mount("a,src=/etc/shadow", "/root/.netrc")
    with pytest.raises(ValueError):
        secret_mount("ok", "/root/x,uid=0")


@pytest.mark.parametrize("value", ["a b", "x,,y", ",x", "x$y", 'x"', "x\ny", "-x"])
def test_goprivate_is_module_patterns(value: str) -> None:
    with pytest.raises(OptionError):
        get_plugin("go").clean_options({"goprivate": value})


def test_goprivate_alone_sets_the_env_without_a_secret() -> None:
    plugin = get_plugin("go")
    text = plugin.render(plugin.clean_options({"goprivate": "git.corp.example.com/*"})).dockerfile
    assert 'ARG GOPRIVATE="git.corp.example.com/*"' in text
    assert "ENV GOPRIVATE=$GOPRIVATE GONOSUMDB=$GOPRIVATE" in text
    assert "type=secret" not in text


@pytest.mark.parametrize("other", ["maven_mirror", "maven_settings_url"])
def test_maven_settings_come_from_one_place(other: str) -> None:
    with pytest.raises(OptionError):
        get_plugin("java").clean_options(
            {"maven_settings_secret": "m2", other: "https://nexus.example.com/settings.xml"}
        )
    with pytest.raises(OptionError):
        get_plugin("java").clean_options({"build_tool": "gradle", "maven_settings_secret": "m2"})
