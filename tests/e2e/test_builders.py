"""Named buildx builders against the real CLI and engine: create from nodes, append and remove a
node, inspect, bootstrap, remove. Bootstrapping the docker-container driver needs the
moby/buildkit image, which cannot be pulled here: the test pins that the admin sees buildx's
own error for it, and that nothing else is left behind."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
from django.test import Client

from builds import builders
from builds.models import BuilderNode, BuildxBuilder
from builds.nodes import DEFAULT_ENDPOINT
from portal.grammar import InvalidValue


@pytest.fixture
def own_config(settings: Any, tmp_path: Any) -> Any:
    settings.DATA_DIR = tmp_path
    return tmp_path / "docker"


def _ls(config: Any) -> str:
    return subprocess.run(
        ["docker", "--config", str(config), "buildx", "ls"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_builder_lifecycle_with_the_articles_commands(
    stack: None, db: Any, own_config: Any
) -> None:
    endpoint = os.environ.get("DOCKER_HOST", DEFAULT_ENDPOINT)
    one = BuilderNode.objects.create(name="one", endpoint=endpoint)
    two = BuilderNode.objects.create(name="two", endpoint=endpoint)
    with pytest.raises(InvalidValue):
        builders.create("--bad", [one])

    results = builders.create("fleet", [one])
    assert [r.code for r in results] == [0, 0], results
    assert results[1].command == (
        "docker buildx create --name=fleet --driver=docker-container "
        "--driver-opt=network=host --node=fleet-one -- crossport-one"
    )
    builder = BuildxBuilder.objects.get(name="fleet")
    assert "fleet-one" in _ls(own_config)

    appended = builders.append(builder, two)
    assert appended[-1].code == 0, appended
    assert set(builder.nodes.values_list("name", flat=True)) == {"one", "two"}
    inspected = builders.inspect(builder)[0]
    assert inspected.code == 0 and "fleet-two" in inspected.output, inspected
    assert "docker-container" in inspected.output

    left = builders.leave(builder, two)[0]
    assert left.code == 0, left
    assert "fleet-two" not in builders.inspect(builder)[0].output

    booted = builders.bootstrap(builder)[0]
    # No moby/buildkit image can be pulled on this machine: buildx's error reaches the admin.
    assert booted.code != 0 and "moby/buildkit" in booted.output, booted

    removed = builders.remove(builder)[0]
    assert removed.code == 0, removed
    assert not BuildxBuilder.objects.exists() and "fleet" not in _ls(own_config)


def test_admin_pages_show_commands_and_output(
    stack: None, db: Any, own_config: Any, django_user_model: Any
) -> None:
    admin = django_user_model.objects.create_superuser("root", password="root-password-1")
    node = BuilderNode.objects.create(
        name="one", endpoint=os.environ.get("DOCKER_HOST", DEFAULT_ENDPOINT)
    )
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/admin/builds/buildxbuilder/add/", {"name": "adm", "nodes": [node.pk]}, follow=True
    )
    page = response.content.decode()
    assert "$ docker buildx create --name=adm --driver=docker-container" in page
    builder = BuildxBuilder.objects.get(name="adm")
    page = client.post(
        f"/admin/builds/buildxbuilder/{builder.pk}/manage/", {"action": "inspect"}
    ).content.decode()
    assert "$ docker buildx inspect -- adm" in page and "adm-one" in page
    response = client.post(
        f"/admin/builds/buildxbuilder/{builder.pk}/manage/", {"action": "remove"}, follow=True
    )
    assert not BuildxBuilder.objects.exists()
    assert "removed builder adm" in [str(m) for m in response.context["messages"]]
