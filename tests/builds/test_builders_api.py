"""`/api/v1/builders`: staff with the node permissions; each change answers with the commands
it ran; a node that cannot join is reported and nothing is left behind."""

from __future__ import annotations

from typing import Any

import pytest

from builds.models import BuilderNode, BuildxBuilder
from fakes import second_node


@pytest.fixture
def staff(db: Any) -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("root", password="root-password-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__endswith="_buildernode"))
    return user


@pytest.fixture(autouse=True)
def _own_data_dir(settings: Any, tmp_path: Any) -> None:
    settings.DATA_DIR = tmp_path


def test_builders_are_for_staff_with_the_node_permissions(
    api: Any, alice: Any, engines: Any, local_node: BuilderNode
) -> None:
    assert api(alice).get("/api/v1/builders").status_code == 403
    body = {"name": "fleet", "nodes": [{"node": local_node.pk}]}
    refused = api(alice).post("/api/v1/builders", body)
    assert refused.status_code == 403 and "staff" in refused.json()["error"]
    assert engines.commands == [] and not BuildxBuilder.objects.exists()


def test_create_list_append_leave_bootstrap_delete(
    api: Any, staff: Any, engines: Any, local_node: BuilderNode, tmp_path: Any
) -> None:
    client = api(staff)
    arm = second_node(name="arm")
    body = {"name": "fleet", "nodes": [{"node": local_node.pk, "platforms": ["linux/amd64"]}]}
    made = client.post("/api/v1/builders", body)
    assert made.status_code == 201, made.json()
    answer = made.json()
    assert answer["error"] == ""
    assert answer["builder"]["nodes"] == [
        {"node": local_node.pk, "name": "local", "platforms": ["linux/amd64"]}
    ]
    create = answer["commands"][-1]
    assert create["exit_code"] == 0 and create["command"].startswith(
        "docker buildx create --name=fleet --driver=docker-container"
    )
    assert f"--buildkitd-config={tmp_path}/buildkit/fleet.toml" in create["command"]
    assert client.post("/api/v1/builders", body).status_code == 409

    listed = client.get("/api/v1/builders").json()["builders"]
    assert [b["name"] for b in listed] == ["fleet"]
    appended = client.post(
        "/api/v1/builders/fleet/append", {"node": arm.pk, "platforms": ["arm64"]}
    )
    assert appended.status_code == 200, appended.json()
    assert (
        "--platform=linux/arm64 --node=fleet-arm --append"
        in (appended.json()["commands"][-1]["command"])
    )
    detail = client.get("/api/v1/builders/fleet").json()
    assert [m["platforms"] for m in detail["nodes"]] == [["linux/amd64"], ["linux/arm64"]]

    booted = client.post("/api/v1/builders/fleet/bootstrap")
    assert booted.json()["commands"][0]["command"] == "docker buildx inspect --bootstrap -- fleet"
    left = client.post("/api/v1/builders/fleet/leave", {"node": arm.pk})
    assert left.status_code == 200
    assert [m["name"] for m in left.json()["builder"]["nodes"]] == ["local"]
    assert client.post("/api/v1/builders/fleet/leave", {"node": arm.pk}).status_code == 409

    gone = client.client.delete("/api/v1/builders/fleet", headers=client.headers)
    assert gone.status_code == 200 and gone.json()["builder"] is None
    assert gone.json()["commands"][0]["command"] == "docker buildx rm -- fleet"
    assert client.get("/api/v1/builders/fleet").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "why"),
    [
        ({"name": "Fleet!", "nodes": [{"node": 1}]}, 400, "builder name"),
        ({"name": "fleet", "nodes": []}, 400, "nodes"),
        ({"name": "fleet", "nodes": [{"node": 1, "platforms": ["linux/sparc"]}]}, 400, "sparc"),
        ({"name": "fleet", "nodes": [{"node": 1, "platforms": "linux/arm64"}]}, 400, "list"),
        ({"name": "fleet", "nodes": [{"node": 999}]}, 404, "no node with id 999"),
        ({"name": "fleet", "nodes": [{"node": 1, "shell": "rm"}]}, 400, "unknown fields"),
    ],
)
def test_bad_builders_are_refused_before_any_command(
    api: Any, staff: Any, engines: Any, local_node: BuilderNode, body: Any, status: int, why: str
) -> None:
    for entry in body["nodes"]:
        if entry["node"] == 1:
            entry["node"] = local_node.pk
    response = api(staff).post("/api/v1/builders", body)
    assert response.status_code == status and why in response.json()["error"], response.json()
    assert engines.commands == [] and not BuildxBuilder.objects.exists()


def test_a_node_that_cannot_join_is_named_and_nothing_is_left(
    api: Any, staff: Any, engines: Any, local_node: BuilderNode
) -> None:
    arm = second_node(name="arm")
    engines.failing["--context crossport-arm network ls"] = "error during connect: refused"
    body = {"name": "fleet", "nodes": [{"node": local_node.pk}, {"node": arm.pk}]}
    response = api(staff).post("/api/v1/builders", body)
    assert response.status_code == 409
    answer = response.json()
    assert answer["error"] == "node arm could not join: error during connect: refused"
    assert answer["builder"] is None
    assert [c["command"] for c in answer["commands"]][-3:] == [
        "docker buildx rm -- fleet",
        "docker context rm --force -- crossport-local",
        "docker context rm --force -- crossport-arm",
    ]
    assert not BuildxBuilder.objects.exists()


def test_the_builders_api_is_in_the_openapi_document(api: Any, alice: Any) -> None:
    paths = api(alice).get("/api/v1/openapi.json").json()["paths"]
    assert set(paths["/builders"]) == {"get", "post"}
    assert set(paths["/builders/{id}"]) == {"get", "delete"}
    for action in ("append", "leave", "bootstrap"):
        assert "403" in paths[f"/builders/{{id}}/{action}"]["post"]["responses"]
    body = paths["/builders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/BuilderIn"}


def test_the_admin_pages_make_a_builder_and_append_a_node_with_its_platforms(
    admin_client: Any, engines: Any, local_node: BuilderNode
) -> None:
    arm = second_node(name="arm")
    response = admin_client.post(
        "/admin/builds/buildxbuilder/add/", {"name": "adm", "nodes": [local_node.pk]}, follow=True
    )
    page = response.content.decode()
    assert "$ docker buildx create --name=adm --driver=docker-container" in page
    builder = BuildxBuilder.objects.get(name="adm")
    manage = f"/admin/builds/buildxbuilder/{builder.pk}/manage/"
    refused = admin_client.post(
        manage, {"action": "append", "node": arm.pk, "platforms": "sparc"}, follow=True
    )
    assert "unknown architecture" in refused.content.decode()
    page = admin_client.post(
        manage, {"action": "append", "node": arm.pk, "platforms": "arm64, arm/v7"}
    ).content.decode()
    assert "--platform=linux/arm64,linux/arm/v7 --node=adm-arm --append" in page
    assert "serves linux/arm64, linux/arm/v7" in page
    assert [m.platforms for m in builder.members()] == [[], ["linux/arm64", "linux/arm/v7"]]


def test_wrong_buildkit_settings_are_a_check_error_and_a_refusal_not_a_500(
    api: Any, staff: Any, engines: Any, local_node: BuilderNode, settings: Any
) -> None:
    from django.core import checks

    settings.PORTAL_BUILDKIT_REGISTRY_CA = {"registry.lan:5000": "ca.pem"}
    [problem] = [m for m in checks.run_checks() if m.id == "crossport.E005"]
    assert "'ca.pem' is not absolute" in problem.msg
    body = {"name": "fleet", "nodes": [{"node": local_node.pk}]}
    response = api(staff).post("/api/v1/builders", body)
    assert response.status_code == 409
    assert response.json()["error"].startswith("the portal's BuildKit settings are wrong:")
    assert not BuildxBuilder.objects.exists()
    assert " buildx create" not in " ".join(engines.commands)
