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
    assert re.search(r"\d+\.\d+", node.buildkit_version), node.buildkit_version
    assert node.image_store == "containerd"  # teststack turns on the containerd image store
    assert node.native_platforms[0] == "linux/amd64"
    assert {"linux/arm64", "linux/arm/v7"} <= set(node.emulated_platforms)
    assert node.last_checked_at is not None and node.last_error == ""
