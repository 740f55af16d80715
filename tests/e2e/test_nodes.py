"""The local builder node against the real engine: versions, native and emulated platforms."""

from __future__ import annotations

import os
import re
from typing import Any

from builds.models import BuilderNode
from builds.nodes import DEFAULT_ENDPOINT, check_node


def test_local_node_reports_engine_buildkit_and_platforms(stack: None, db: Any) -> None:
    node = BuilderNode.objects.create(
        name="local", endpoint=os.environ.get("DOCKER_HOST", DEFAULT_ENDPOINT)
    )
    check_node(node)
    node.refresh_from_db()
    assert node.reachable, node.last_error
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", node.engine_version), node.engine_version
    # Debian's engine reports its BuildKit as v0.0.0+unknown: stored as unknown, shown as the
    # engine's; a stamped BuildKit shows its own version.
    assert not node.buildkit_version.startswith("v0.0.0"), node.buildkit_version
    assert node.buildkit_label in (
        node.buildkit_version or "-",
        f"bundled with Docker {node.engine_version}",
    ), node.buildkit_label
    assert node.image_store == "containerd"  # teststack turns on the containerd image store
    assert node.native_platforms[0] == "linux/amd64"
    assert {"linux/arm64", "linux/arm/v7"} <= set(node.emulated_platforms)
    assert node.last_checked_at is not None and node.last_error == ""


def test_the_nodes_pages_check_button_checks_the_real_engine(stack: None, db: Any) -> None:
    from django.contrib.auth.models import User
    from django.test import Client

    node = BuilderNode.objects.create(
        name="local", endpoint=os.environ.get("DOCKER_HOST", DEFAULT_ENDPOINT)
    )
    staff = User.objects.create_superuser("nodes-staff", password="nodes-staff-password-1")
    client = Client()
    client.force_login(staff)
    page = client.post(f"/nodes/{node.pk}/", {"action": "check"}, follow=True)
    node.refresh_from_db()
    assert node.reachable, node.last_error
    text = page.content.decode()
    assert "local is healthy." in text and "v0.0.0+unknown" not in text
    assert node.buildkit_label in text and node.native_platforms[0] in text
