"""Node pools: a node reserved for teams runs only their builds; another team's build goes to a
shared node or fails at planning with a reason that names the platforms, never the teams."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from builds.models import Build, BuilderNode
from builds.services import queue_build
from builds.worker import work_once
from fakes import FakeBackend, second_node
from portal.models import Team

HEADLINE = (
    "no build plan: no node open to this team can build linux/amd64, linux/arm64, "
    "linux/arm/v7: the nodes that serve them are reserved for other teams"
)


def test_a_node_reserved_for_another_team_fails_the_build_before_anything_runs(
    project: Any, alice: Any, local_node: BuilderNode, beta: Team
) -> None:
    local_node.reserved_for.set([beta])
    build = queue_build(project, alice)
    assert build.plan["error"] == HEADLINE.removeprefix("no build plan: "), "shown when queued"
    backend = FakeBackend()
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.FAILED and build.reason == HEADLINE
    assert "beta" not in build.reason and "local" not in build.reason
    assert backend.specs == [], "nothing ran"
    assert not build.platform_states.filter(node__isnull=False).exists()


def test_another_teams_build_goes_to_a_shared_node(
    project: Any, alice: Any, local_node: BuilderNode, beta: Team
) -> None:
    local_node.reserved_for.set([beta])
    second_node(name="shared")
    build = queue_build(project, alice, strategy="native")
    backend = FakeBackend()
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    assert {s.docker_host for s in backend.specs} == {"tcp://127.0.0.1:9"}
    assert set(build.platform_states.values_list("node__name", flat=True)) == {"shared"}


def test_the_teams_own_reserved_node_serves_it(
    project: Any, alice: Any, local_node: BuilderNode, alpha: Team, beta: Team
) -> None:
    local_node.reserved_for.set([beta, alpha])
    build = queue_build(project, alice)
    work_once("w1", FakeBackend())
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    assert set(build.platform_states.values_list("node__name", flat=True)) == {"local"}


def test_a_down_node_of_another_team_is_not_waited_for(
    project: Any, alice: Any, local_node: BuilderNode, beta: Team
) -> None:
    local_node.reserved_for.set([beta])
    second_node(name="down", reachable=False).reserved_for.set([beta])
    build = queue_build(project, alice)
    work_once("w1", FakeBackend())
    build.refresh_from_db()
    assert build.state == Build.State.FAILED and build.reason == HEADLINE
    BuilderNode.objects.filter(name="down").update(reachable=False)
    BuilderNode.objects.get(name="down").reserved_for.clear()
    waiting = queue_build(project, alice)
    work_once("w1", FakeBackend())
    waiting.refresh_from_db()
    assert waiting.state == Build.State.QUEUED, "a shared node that is down may come back"


# admin and API ----------------------------------------------------------------------------
@pytest.fixture
def staff(db: Any) -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("root", password="root-password-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__endswith="_buildernode"))
    return user


@pytest.fixture(autouse=True)
def _no_connections(monkeypatch: Any) -> None:
    from builds import nodes as node_module

    def refuse(node: Any, certs: Any, timeout: int = 15) -> Any:
        raise ConnectionRefusedError("not in this test")

    monkeypatch.setattr(node_module, "docker_client", refuse)


def _patch(client: Any, pk: int, body: dict[str, Any]) -> Any:
    return client.client.patch(
        f"/api/v1/nodes/{pk}",
        json.dumps(body),
        content_type="application/json",
        headers=client.headers,
    )


def test_the_api_sets_a_nodes_pool_by_team_slugs(
    api: Any, staff: Any, alpha: Team, beta: Team
) -> None:
    client = api(staff)
    body = {"name": "pool", "endpoint": "unix:///x.sock", "reserved_for": ["beta", "alpha"]}
    response = client.post("/api/v1/nodes", body)
    assert response.status_code == 201, response.json()
    assert response.json()["reserved_for"] == ["alpha", "beta"]
    node = BuilderNode.objects.get(name="pool")
    assert set(node.reserved_for.all()) == {alpha, beta}
    assert _patch(client, node.pk, {"enabled": False}).json()["reserved_for"] == ["alpha", "beta"]
    assert _patch(client, node.pk, {"reserved_for": []}).json()["reserved_for"] == []
    refused = _patch(client, node.pk, {"reserved_for": ["nobody"]})
    assert refused.status_code == 400 and "nobody" in json.dumps(refused.json())
    refused = _patch(client, node.pk, {"reserved_for": "alpha"})
    assert refused.status_code == 400
    assert not node.reserved_for.exists()
    listed = client.get("/api/v1/nodes").json()["nodes"]
    assert listed[0]["reserved_for"] == []
    schema = client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    assert "reserved_for" in schema["NodeIn"]["properties"]


def test_the_admin_sets_a_nodes_pool(db: Any, django_user_model: Any, beta: Team) -> None:
    user = django_user_model.objects.create_superuser("root", password="root-password-1")
    client = Client()
    client.force_login(user)
    form = {"name": "pool", "endpoint": "unix:///x.sock", "enabled": "on", "max_builds": "2"}
    response = client.post("/admin/builds/buildernode/add/", form | {"reserved_for": ["beta"]})
    assert response.status_code == 302
    node = BuilderNode.objects.get(name="pool")
    assert [t.slug for t in node.reserved_for.all()] == ["beta"]
    page = client.get(f"/admin/builds/buildernode/{node.pk}/change/").content.decode()
    assert 'name="reserved_for"' in page
    listing = client.get("/admin/builds/buildernode/").content.decode()
    assert "beta" in listing
