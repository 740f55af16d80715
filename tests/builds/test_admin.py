"""The node admin: the same checks as the API before anything is saved or contacted, the TLS
key write-only, health and the emulator page."""

from __future__ import annotations

from typing import Any

import pytest
from certs import client_tls, issue, make_ca
from django.test import Client

from builds import nodes as node_module
from builds.models import BuilderNode


@pytest.fixture
def admin_client(db: Any, django_user_model: Any) -> Client:
    user = django_user_model.objects.create_superuser("root", password="root-password-1")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def no_connections(monkeypatch: Any) -> list[str]:
    seen: list[str] = []

    def refuse(node: Any, certs: Any, timeout: int = 15) -> Any:
        seen.append(node.endpoint)
        raise ConnectionRefusedError("not in this test")

    monkeypatch.setattr(node_module, "docker_client", refuse)
    return seen


def _form(**fields: Any) -> dict[str, Any]:
    return {"name": "arm1", "endpoint": "", "enabled": "on", "max_builds": "2"} | fields


def test_refused_endpoint_saves_nothing_and_shows_why(
    admin_client: Client, no_connections: list[str]
) -> None:
    response = admin_client.post(
        "/admin/builds/buildernode/add/", _form(endpoint="tcp://build.example.com:2375")
    )
    assert response.status_code == 200
    assert "an open Docker port gives root" in response.content.decode()
    assert not BuilderNode.objects.exists() and no_connections == []


def test_tls_node_is_saved_checked_and_its_key_not_shown(
    admin_client: Client, no_connections: list[str]
) -> None:
    ca = make_ca()
    tls = client_tls(ca, issue(ca, "portal"))
    form = _form(
        endpoint="tcp://build.example.com:2376",
        tls_ca=tls["ca"],
        tls_cert=tls["cert"],
        tls_key=tls["key"],
    )
    response = admin_client.post("/admin/builds/buildernode/add/", form, follow=True)
    assert response.status_code == 200
    node = BuilderNode.objects.get()
    assert node.tls() is not None and no_connections == ["tcp://build.example.com:2376"]
    assert node.reachable is False and "not in this test" in node.last_error
    page = admin_client.get(f"/admin/builds/buildernode/{node.pk}/change/").content.decode()
    assert "PRIVATE KEY" not in page and "client certificate valid until" in page
    emulators = admin_client.get(f"/admin/builds/buildernode/{node.pk}/emulators/")
    assert emulators.status_code == 200 and "linux/arm64" in emulators.content.decode()
    response = admin_client.post(
        f"/admin/builds/buildernode/{node.pk}/emulators/", {"platforms": ["linux/mips64le"]}
    )
    assert "unknown architecture" in response.content.decode()
