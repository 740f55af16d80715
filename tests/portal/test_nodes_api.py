"""`/api/v1/nodes`: staff only; bad input is refused before any connection and saves nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from certs import client_tls, issue, make_ca
from django.db import connection

from builds import nodes as node_module
from builds.dockerhost import validate_tls
from builds.models import BuilderNode


@pytest.fixture
def staff(db: Any) -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("root", password="root-password-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__endswith="_buildernode"))
    return user


@pytest.fixture
def connections(monkeypatch: Any) -> list[str]:
    """Every node connection the portal attempts (none may happen for refused input)."""
    seen: list[str] = []
    real = node_module.docker_client

    def spy(node: Any, certs: Any, timeout: int = 15) -> Any:
        seen.append(node.endpoint)
        return real(node, certs, timeout)

    monkeypatch.setattr(node_module, "docker_client", spy)
    return seen


def test_nodes_are_for_staff_only(api: Any, alice: Any) -> None:
    response = api(alice).get("/api/v1/nodes")
    assert response.status_code == 403 and "staff" in response.json()["error"]
    assert api(alice).post("/api/v1/nodes", {"name": "x"}).status_code == 403


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"name": "n1", "endpoint": "tcp://build.example.com:2375"}, "open Docker port"),
        ({"name": "n1", "endpoint": "tcp://10.0.0.5"}, "give a port"),
        ({"name": "n1", "endpoint": "ftp://x"}, "scheme must be"),
        ({"name": "N 1", "endpoint": "unix:///x.sock"}, "lowercase"),
        ({"name": "n1", "endpoint": "unix:///x.sock", "max_builds": 0}, "Between 1 and 64"),
        ({"name": "n1", "endpoint": "tcp://build.example.com:2376", "tls": {"ca": "x"}}, "ca"),
        ({"name": "n1", "endpoint": "unix:///x.sock", "tls": "pem"}, "tls must be an object"),
        ({"name": "n1", "endpoint": "unix:///x.sock", "shell": "rm"}, "unknown fields"),
    ],
)
def test_bad_nodes_are_refused_before_connecting(
    api: Any, staff: Any, connections: list[str], body: dict[str, Any], why: str
) -> None:
    response = api(staff).post("/api/v1/nodes", body)
    assert response.status_code == 400
    assert why in json.dumps(response.json())
    assert not BuilderNode.objects.exists()
    assert connections == [], "no connection for refused input"


def test_wrong_tls_material_is_refused(api: Any, staff: Any, connections: list[str]) -> None:
    ca, stranger = make_ca(), make_ca("stranger")
    client = issue(stranger, "portal")
    body = {
        "name": "arm1",
        "endpoint": "tcp://build.example.com:2376",
        "tls": client_tls(ca, client),
    }
    response = api(staff).post("/api/v1/nodes", body)
    assert response.status_code == 400 and "not signed by the CA" in json.dumps(response.json())
    assert not BuilderNode.objects.exists() and connections == []


def test_a_node_is_saved_checked_and_its_key_never_shown(
    api: Any, staff: Any, connections: list[str]
) -> None:
    ca = make_ca()
    tls = client_tls(ca, issue(ca, "portal"))
    # Loopback port 9: nothing listens, so the check after saving fails fast and locally.
    body = {"name": "second", "endpoint": "tcp://127.0.0.1:9", "tls": tls, "max_builds": 3}
    response = api(staff).post("/api/v1/nodes", body)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["tls"] is True and data["max_builds"] == 3 and data["reachable"] is False
    assert data["last_error"] and data["last_checked_at"]
    assert connections == ["tcp://127.0.0.1:9"]
    text = response.content.decode()
    assert "PRIVATE KEY" not in text and "CERTIFICATE" not in text
    with connection.cursor() as cursor:
        cursor.execute("SELECT tls_sealed FROM builds_buildernode")
        (sealed,) = cursor.fetchone()
    assert sealed and "PRIVATE KEY" not in sealed, "sealed at rest"
    node = BuilderNode.objects.get(name="second")
    assert node.tls().key == tls["key"]  # type: ignore[union-attr]
    listed = api(staff).get("/api/v1/nodes").json()["nodes"]
    assert [n["name"] for n in listed] == ["second"]
    assert api(staff).get(f"/api/v1/nodes/{node.pk}").json()["endpoint"] == "tcp://127.0.0.1:9"


def test_drain_keeps_tls_and_refuses_bad_changes(api: Any, staff: Any) -> None:
    ca = make_ca()
    tls = client_tls(ca, issue(ca, "portal"))
    node = BuilderNode.objects.create(name="n", endpoint="tcp://build.example.com:2376")
    node.set_tls(*validate_tls(tls))
    node.save()
    client = api(staff)
    response = client.client.patch(
        f"/api/v1/nodes/{node.pk}",
        json.dumps({"enabled": False}),
        content_type="application/json",
        headers=client.headers,
    )
    assert response.status_code == 200 and response.json()["enabled"] is False
    node.refresh_from_db()
    assert node.enabled is False and node.tls() is not None, "the saved TLS material stays"
    response = client.client.patch(
        f"/api/v1/nodes/{node.pk}",
        json.dumps({"endpoint": "tcp://build.example.com:2375", "tls": {}}),
        content_type="application/json",
        headers=client.headers,
    )
    assert response.status_code == 200, "empty tls keeps what is saved"
    node.refresh_from_db()
    assert node.endpoint == "tcp://build.example.com:2375" and node.tls() is not None


def test_emulator_install_refuses_unknown_platforms(api: Any, staff: Any) -> None:
    node = BuilderNode.objects.create(name="n", endpoint="unix:///nothing.sock")
    client = api(staff)
    response = client.post(f"/api/v1/nodes/{node.pk}/emulators", {"platforms": ["--all"]})
    assert response.status_code == 400
    response = client.post(f"/api/v1/nodes/{node.pk}/emulators", {"platforms": ["linux/mips64le"]})
    assert response.status_code == 400 and "unknown architecture" in response.json()["error"]
    assert client.get("/api/v1/nodes/999").status_code == 404
