"""Dockerfile checks: parser, hadolint, and the emulation warning."""

from __future__ import annotations

import lang_plugins
from builds.lint import check, has_errors

NAIVE = """FROM golang:1.19 AS build
WORKDIR /src
COPY . .
RUN go build -o /app .
FROM alpine:3.20
COPY --from=build /app /app
"""


def test_generated_go_dockerfile_is_clean_even_behind_a_port_mirror() -> None:
    plugin = lang_plugins.get_plugin("go")
    text = plugin.render(plugin.clean_options({}), mirror="localhost:5000/library").dockerfile
    assert check(text) == []


def test_compiling_stage_not_pinned_to_buildplatform_is_warned() -> None:
    findings = check(NAIVE)
    emulation = [f for f in findings if f.code == "emulation"]
    assert [(f.line, f.level) for f in emulation] == [(4, "warning")]
    assert "go build" in emulation[0].message and "$BUILDPLATFORM" in emulation[0].message
    pinned = NAIVE.replace("FROM golang", "FROM --platform=$BUILDPLATFORM golang")
    assert not [f for f in check(pinned) if f.code == "emulation"]


def test_hadolint_findings_are_reported_with_lines() -> None:
    findings = check("FROM alpine:3.20\nRUN apk add curl\n")
    codes = {f.code: f for f in findings}
    assert "DL3018" in codes and codes["DL3018"].line == 2
    assert codes["emulation"].level == "warning"


def test_broken_dockerfiles_are_errors() -> None:
    for text, line in [
        ("FROM\n", 1),
        ("FROM alpine:3.20\nFOO bar\n", 2),
        ("FROM alpine:3.20\nRUN \\\n", 3),
    ]:
        findings = check(text)
        assert has_errors(findings), text
        assert [f.line for f in findings if f.level == "error"] == [line]
    assert [f.code for f in check("FROM alpine\x00\n")] == ["nul"]
    assert [f.code for f in check("FROM alpine:3.20\n" + "# x\n" * 40000)] == ["size"]
    assert not has_errors(check("FROM alpine:3.20\n"))


def test_pinned_stages_are_recognised_in_every_spelling() -> None:
    braces = NAIVE.replace("FROM golang", "FROM --platform=${BUILDPLATFORM} golang")
    assert not [f for f in check(braces) if f.code == "emulation"]
    chained = (
        "FROM --platform=$BUILDPLATFORM golang:1.19 AS build\n"
        "FROM build AS test\nRUN go build ./...\n"
    )
    assert not [f for f in check(chained) if f.code == "emulation"]


def test_heredoc_scripts_are_checked_too() -> None:
    text = "FROM golang:1.19\nRUN <<EOF\nset -e\ngo build -o /app .\nEOF\n\n"
    assert [f.line for f in check(text) if f.code == "emulation"] == [2]


def test_hadolint_rule_errors_do_not_block_saving() -> None:
    findings = check("FROM alpine:3.20\nWORKDIR relative\n")
    assert any(f.level == "error" and f.code == "DL3000" for f in findings)
    assert not has_errors(findings)


def test_a_secret_mount_without_the_scope_arg_cannot_be_saved() -> None:
    text = (
        "FROM --platform=$BUILDPLATFORM alpine:3.20\n"
        "RUN --mount=type=secret,id=npmrc,target=/root/.npmrc true\n"
    )
    findings = [f for f in check(text) if f.code == "secret"]
    assert [(f.line, f.level) for f in findings] == [(2, "error")]
    assert "ARG CROSSPORT_TEAM_SCOPE" in findings[0].message and has_errors(findings)
    scoped = text.replace("\nRUN", "\nARG CROSSPORT_TEAM_SCOPE\nRUN")
    assert not [f for f in check(scoped) if f.code == "secret"]


def test_generated_dockerfiles_with_secrets_lint_clean() -> None:
    for key, options in [
        ("go", {"netrc_secret": "n", "goprivate": "example.com/*"}),
        ("python", {"pip_secret": "p"}),
        ("java", {"maven_settings_secret": "m"}),
        ("static", {"build": "npm", "npmrc_secret": "n"}),
    ]:
        plugin = lang_plugins.get_plugin(key)
        plain = {k: v for k, v in options.items() if not k.endswith("_secret")}
        before = {(f.code, f.level) for f in check(render(plugin, plain))}
        findings = check(render(plugin, options))
        assert not has_errors(findings), (key, findings)
        assert {(f.code, f.level) for f in findings} == before, key  # nothing new to warn of


def render(plugin: lang_plugins.Plugin, options: dict[str, str]) -> str:
    return plugin.render(plugin.clean_options(options), mirror="localhost:5000/library").dockerfile
