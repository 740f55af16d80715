"""Isolation between teams on shared nodes: every build's cache mounts are namespaced by its
team's opaque id, and nothing in a Dockerfile can replace that namespace or the frontend that
applies it (refused when saved and again when built)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from builds.buildx import CACHE_NS_ARG
from builds.lint import check, has_errors, isolation_refusals
from builds.models import Build
from builds.services import queue_build
from builds.worker import work_once
from fakes import FakeBackend
from portal.models import Project, Team

BODY = "FROM alpine:3.20\nRUN --mount=type=cache,target=/cache,id=shared ls /cache\n"


@pytest.mark.parametrize(
    "text",
    [
        f"# syntax=docker/dockerfile:1\n{BODY}",
        f"#syntax = evil.example.com/frontend\n{BODY}",
        f"\ufeff# SYNTAX=docker/dockerfile:1\n{BODY}",
        f"#!/usr/bin/env buildctl\n# syntax=x\n{BODY}",
        f"# escape=`\n  #  Syntax=x\n{BODY}",
        f"// syntax=evil/frontend\n{BODY}",
        '{"syntax": "evil/frontend", "steps": []}\n',
        '{"SYNTAX": "evil/frontend"}',
        # BuildKit splits lines on \n only: these are one line, "#<blank>syntax=..." to it.
        f"#\rsyntax=evil/fe\n{BODY}",
        f"#\x0csyntax=evil/fe\n{BODY}",
        f"#\x0bsyntax=evil/fe\n{BODY}",
        f"#\x85syntax=evil/fe\n{BODY}",
        f"#\u2028syntax=evil/fe\n{BODY}",
        '#!/x\n{"syntax": "evil/frontend"}\n',  # the shebang line is dropped first
        '{"a":' + "[" * 30000,  # not even JSON: still refused, and no RecursionError
    ],
)
def test_frontend_directives_are_refused(text: str) -> None:
    (refusal,) = isolation_refusals(text)
    assert refusal.level == "error" and refusal.code == "isolation"
    assert "frontend" in refusal.message and "cache" in refusal.message
    assert has_errors(check(text)), "a refusal blocks saving"


@pytest.mark.parametrize(
    "line",
    ["ARG BUILDKIT_CACHE_MOUNT_NS", "ARG BUILDKIT_CACHE_MOUNT_NS=other", "ARG buildkit_syntax=x"],
)
def test_build_args_the_portal_owns_are_refused(line: str) -> None:
    text = f"FROM alpine:3.20\nARG A=1 \\\n  {line}\n"
    (refusal,) = isolation_refusals(text)
    assert refusal.line == 2 and refusal.code == "isolation"
    assert "BUILDKIT_" in refusal.message and "the portal sets" in refusal.message
    assert has_errors(check(text))


@pytest.mark.parametrize(
    "line",
    [
        "arg BUILDKIT_CACHE_MOUNT_NS=other",  # instructions are read in any case
        "ENV CROSSPORT_TEAM_SCOPE=another-teams-id",  # an ENV wins over the build arg
        "env A=1 crossport_team_scope=x",
        "ENV BUILDKIT_CACHE_MOUNT_NS other",
    ],
)
def test_instructions_in_any_case_and_env_cannot_take_the_portals_names(line: str) -> None:
    text = f"FROM alpine:3.20\nARG CROSSPORT_TEAM_SCOPE\n{line}\n"
    (refusal,) = isolation_refusals(text)
    assert refusal.line == 3 and "the portal sets" in refusal.message
    assert has_errors(check(text))


def test_ordinary_dockerfiles_and_cache_mounts_are_fine() -> None:
    text = (
        "# a comment that mentions syntax\n\nFROM alpine:3.20\n"
        "# syntax=docker/dockerfile:1 (too late to be a directive)\n"
        "ARG CACHE_MOUNT_NS=x\n" + BODY.split("\n", 1)[1]
    )
    assert isolation_refusals(text) == []
    assert isolation_refusals(BODY) == []


def test_the_cache_namespace_is_the_teams_opaque_id(alpha: Team, beta: Team) -> None:
    assert alpha.opaque_id != beta.opaque_id
    assert alpha.opaque_id == Team.objects.get(pk=alpha.pk).opaque_id, "stable"
    for team in (alpha, beta):
        assert len(team.opaque_id) == 32 and team.opaque_id.isalnum()
        assert team.slug not in team.opaque_id and str(team.pk) != team.opaque_id


def test_every_build_gets_its_teams_cache_namespace(project: Project, alice: Any) -> None:
    backend = FakeBackend()
    build = queue_build(project, alice, strategy="native")
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    wanted = f"--build-arg={CACHE_NS_ARG}={project.team.opaque_id}"
    for spec in backend.specs:
        argv = spec.argv()
        assert argv.count(wanted) == 1
        assert argv.index(wanted) < argv.index("--"), "an option, before the context"


def test_a_refused_dockerfile_fails_the_build_before_buildx(project: Project, alice: Any) -> None:
    # Saved before the rule existed (or written to the database by other means).
    Project.objects.filter(pk=project.pk).update(custom_dockerfile=f"# syntax=evil/x\n{BODY}")
    backend = FakeBackend()
    build = queue_build(project, alice)
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.FAILED and backend.specs == []
    assert build.reason.startswith("the Dockerfile is refused: line 1: `# syntax=`")


def test_saving_a_custom_dockerfile_refuses_them(project: Project, alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    url = f"/projects/{project.pk}/Dockerfile/edit"
    response = client.post(url, {"dockerfile": f"# syntax=evil/frontend\n{BODY}"})
    assert response.status_code == 200
    assert "cache mounts" in response.content.decode()
    project.refresh_from_db()
    assert project.custom_dockerfile == ""
    response = client.post(url, {"dockerfile": BODY})
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.custom_dockerfile == BODY
