"""Team build secrets: sealed at rest, never answered, admins change, members list."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from portal import team_secrets
from portal.models import Project, Team, TeamSecret

URL = "/api/v1/teams/alpha/secrets"
VALUE = "machine git.example.com login robot password s3cr3t-Value-42\n"


def send(api: Any, method: str, path: str, data: Any = None) -> Any:
    body = json.dumps(data) if data is not None else ""
    return api.client.generic(
        method, path, body, content_type="application/json", headers=api.headers
    )


def test_admin_creates_lists_rotates_and_deletes_without_ever_seeing_the_value(
    api: Any, alice: Any, project: Project
) -> None:
    admin = api(alice)
    created = admin.post(URL, {"name": "gitNetrc", "value": VALUE, "projects": ["hello"]})
    assert created.status_code == 201, created.content
    assert created.json()["projects"] == ["hello"]
    row = TeamSecret.objects.get(name="gitNetrc")
    assert VALUE not in row.value_sealed and row.value == VALUE  # sealed at rest
    listed = admin.get(URL)
    assert [s["name"] for s in listed.json()["secrets"]] == ["gitNetrc"]
    assert listed.json()["secrets"][0]["last_used_at"] is None
    rotated = send(admin, "PUT", f"{URL}/gitNetrc", {"value": "other-value-1"})
    assert rotated.status_code == 200, rotated.content
    row.refresh_from_db()
    assert row.value == "other-value-1" and row.rotated_at >= row.created_at
    for answer in (created, listed, rotated):
        assert b"s3cr3t" not in answer.content and b"other-value" not in answer.content
    assert send(admin, "DELETE", f"{URL}/gitNetrc").status_code == 204
    assert not TeamSecret.objects.exists()


def test_members_list_but_may_not_change(api: Any, alice: Any, bob: Any, alpha: Team) -> None:
    team_secrets.create(alpha, "npmrc", "//npm/:_authToken=abc123456", None, alice)
    member = api(bob)
    assert [s["name"] for s in member.get(URL).json()["secrets"]] == ["npmrc"]
    assert member.post(URL, {"name": "other", "value": "x"}).status_code == 403
    assert send(member, "PUT", f"{URL}/npmrc", {"value": "y"}).status_code == 403
    assert send(member, "DELETE", f"{URL}/npmrc").status_code == 403
    assert TeamSecret.objects.get().value == "//npm/:_authToken=abc123456"


def test_other_teams_see_nothing(api: Any, alice: Any, charlie: Any, alpha: Team) -> None:
    team_secrets.create(alpha, "npmrc", "token-1234", None, alice)
    outsider = api(charlie)
    assert outsider.get(URL).status_code == 404
    assert send(outsider, "DELETE", f"{URL}/npmrc").status_code == 404


@pytest.mark.parametrize(
    "name", ["1abc", "-x", "a b", "a/b", "a" * 65, "a,b", "a=b", "ä", "", "x\n", "../x"]
)
def test_names_follow_the_grammar(api: Any, alice: Any, name: str) -> None:
    answer = api(alice).post(URL, {"name": name, "value": "v"})
    assert answer.status_code == 400
    assert not TeamSecret.objects.exists()


def test_bad_values_and_scopes_are_refused_without_echoing(
    api: Any, alice: Any, project: Any
) -> None:
    admin = api(alice)
    for value in ("", "a\0b", "x" * (team_secrets.MAX_VALUE + 1)):
        answer = admin.post(URL, {"name": "ok", "value": value})
        assert answer.status_code == 400 and b"a\\u0000b" not in answer.content
    answer = admin.post(URL, {"name": "ok", "value": "v", "projects": ["not-ours"]})
    assert answer.status_code == 400
    assert admin.post(URL, {"name": "ok", "value": "v", "projects": "hello"}).status_code == 400
    assert admin.post(URL, {"name": "ok", "value": "hunter2-secret"}).status_code == 201
    again = admin.post(URL, {"name": "ok", "value": "hunter2-secret"})
    assert again.status_code == 409 and b"hunter2" not in again.content


def test_the_team_page_manages_secrets_and_never_shows_values(
    alice: Any, bob: Any, project: Project
) -> None:
    page = Client()
    page.force_login(alice)
    url = "/teams/alpha/secrets"
    page.post(
        url,
        {
            "action": "create",
            "name": "pipconf",
            "value": "[global]\nindex-url=https://u:pw-7777@x/",
        },
    )
    page.post(url, {"action": "create", "name": "scoped", "value": "v-8888", "projects": ["hello"]})
    assert sorted(TeamSecret.objects.values_list("name", flat=True)) == ["pipconf", "scoped"]
    shown = page.get("/teams/alpha/").content
    assert b"pipconf" in shown and b"pw-7777" not in shown and b"v-8888" not in shown
    page.post(url, {"action": "rotate", "name": "pipconf", "value": "new-9999"})
    assert TeamSecret.objects.get(name="pipconf").value == "new-9999"
    page.post(url, {"action": "delete", "name": "scoped"})
    assert list(TeamSecret.objects.values_list("name", flat=True)) == ["pipconf"]
    member = Client()
    member.force_login(bob)
    assert b"pipconf" in member.get("/teams/alpha/").content
    assert member.post(url, {"action": "delete", "name": "pipconf"}).status_code == 403


def test_scope_decides_which_projects_get_a_secret(
    alice: Any, alpha: Team, project: Project
) -> None:
    other = Project.objects.create(
        team=alpha,
        name="other",
        git_url=project.git_url,
        image="localhost:5000/alpha/other",
        platforms=["linux/amd64"],
        language="go",
    )
    team_secrets.create(alpha, "everyone", "v1", None, alice)
    team_secrets.create(alpha, "onlyhello", "v2", ["hello"], alice)
    found, problems = team_secrets.for_build(other, ["everyone", "onlyhello", "missing"])
    assert [s.name for s in found] == ["everyone"]
    assert problems == [
        "secret missing does not exist in team alpha",
        "secret onlyhello is not available to project other",
    ]
    found, problems = team_secrets.for_build(project, ["onlyhello"])
    assert [s.name for s in found] == ["onlyhello"] and not problems
