"""Hostile API input gets a clear JSON 4xx and changes nothing (issue: Hardening)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from builds.models import Build, BuilderNode
from portal.models import Project


def send(api: Any, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body) if body is not None else ""
    return api.client.generic(
        method, path, data, content_type="application/json", headers=api.headers
    )


def test_no_token_is_401_before_any_405(api: Any, alice: Any, client: Any) -> None:
    assert client.delete("/api/v1/projects").status_code == 401
    assert client.put("/api/v1/builds/1/log").status_code == 401
    assert send(api(alice), "DELETE", "/api/v1/projects").status_code == 405


@pytest.mark.parametrize("word", ["no", "off", "0", "false", "yes", 0, 1, None])
def test_booleans_are_json_true_or_false_only(
    api: Any, alice: Any, project: Project, local_node: BuilderNode, word: Any
) -> None:
    staff = get_user_model().objects.create_user("ops", password="ops-password-1", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__endswith="_buildernode"))
    answer = send(api(staff), "PATCH", f"/api/v1/nodes/{local_node.pk}", {"enabled": word})
    if word is None:  # null leaves the field as it is
        assert answer.status_code == 200
    else:
        assert (
            answer.status_code == 400 and answer.json()["error"] == "enabled must be true or false"
        )
    local_node.refresh_from_db()
    assert local_node.enabled is True
    merge = {"team": "alpha", "target": "localhost:5000/alpha/m:v1", "sources": ["a"]}
    answer = api(alice).post("/api/v1/merges", merge | {"dry_run": word})
    if word is not None:
        assert answer.json()["error"] == "dry_run must be true or false"
    created = api(alice).post(
        "/api/v1/projects",
        {
            "team": "alpha",
            "name": "strict",
            "language": "static",
            "git_url": "https://git.example.com/strict.git",
            "image": "localhost:5000/alpha/strict",
            "platforms": ["linux/amd64"],
            "immutable_tags": word,
        },
    )
    assert created.status_code == 400 and not Project.objects.filter(name="strict").exists()


def test_huge_ids_and_query_numbers_are_4xx(api: Any, alice: Any, queued_build: Build) -> None:
    client = api(alice)
    huge = "9" * 30
    for path in (f"/api/v1/builds/{huge}", f"/api/v1/projects/{huge}", f"/api/v1/nodes/{huge}"):
        answer = client.get(path)
        assert answer.status_code == 404 and "error" in answer.json(), path
    assert client.get(f"/api/v1/manifests?project={huge}").status_code == 400
    assert client.get(f"/api/v1/builds/{queued_build.pk}/log?after={huge}").status_code == 400
    answer = alice_page(alice).get(f"/builds/{huge}/")
    assert answer.status_code == 404


def alice_page(user: Any) -> Any:
    from django.test import Client

    page = Client()
    page.force_login(user)
    return page


@pytest.fixture
def viewer(db: Any) -> Any:
    user = get_user_model().objects.create_user("viewer", password="viewer-password", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_buildernode"))
    return user


def test_node_api_checks_model_permissions(api: Any, viewer: Any, local_node: BuilderNode) -> None:
    client = api(viewer)
    assert client.get("/api/v1/nodes").status_code == 200
    refused = client.post("/api/v1/nodes", {"name": "n2", "endpoint": "unix:///x.sock"})
    assert refused.status_code == 403 and "add permission" in refused.json()["error"]
    assert client.post(f"/api/v1/nodes/{local_node.pk}/check").status_code == 403
    assert send(client, "DELETE", f"/api/v1/nodes/{local_node.pk}").status_code == 403
    viewer.user_permissions.add(Permission.objects.get(codename="delete_buildernode"))
    viewer = get_user_model().objects.get(pk=viewer.pk)  # permissions are cached per object
    assert send(client, "DELETE", f"/api/v1/nodes/{local_node.pk}").status_code == 204
    assert not BuilderNode.objects.filter(pk=local_node.pk).exists()


def test_staff_without_permissions_manage_no_nodes(api: Any, local_node: BuilderNode) -> None:
    bare = get_user_model().objects.create_user("bare", password="bare-password-1", is_staff=True)
    assert api(bare).get("/api/v1/nodes").status_code == 403
