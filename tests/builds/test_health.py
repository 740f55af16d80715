"""/healthz and /readyz: no login, JSON, and /readyz names each part that is not ready."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings

from builds.models import BuilderNode

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_login_and_asks_nothing(
    django_assert_num_queries: Any,
) -> None:
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_needs_a_healthy_enabled_node(local_node: BuilderNode) -> None:
    assert Client().get("/readyz").json() == {"status": "ok"}
    local_node.enabled = False
    local_node.save()
    BuilderNode.objects.create(name="down", endpoint="unix:///nowhere.sock", reachable=False)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failing": ["builder_node"]}


def test_readyz_names_a_channel_layer_that_cannot_be_reached(local_node: BuilderNode) -> None:
    # A real Redis layer at a port where nothing listens: the part fails, the answer is a
    # 503 naming it (no address, no error text), within the probe's time, not a 500.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"]},
        }
    }
    from channels.layers import channel_layers

    with override_settings(CHANNEL_LAYERS=layers):
        channel_layers.backends.clear()
        try:
            response = Client().get("/readyz")
        finally:
            channel_layers.backends.clear()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failing": ["channel_layer"]}
    assert str(port) not in response.content.decode()


def test_readyz_is_get_only() -> None:
    assert Client().post("/readyz").status_code == 405
