"""An `ssh://user@host` node: an sshd the test starts on 127.0.0.1 in front of this machine's
engine, registered through the API, checked, and given a build (the local node drained for
the length of the test, so the plan must use the ssh node)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from stack import PLATFORMS, SshNode, go_project, registry_index, wait_finished


@pytest.fixture
def ssh_node(stack: None, tmp_path: Any) -> Iterator[SshNode]:
    node = SshNode(tmp_path)
    node.start()
    try:
        yield node
    finally:
        node.stop()


def test_a_build_through_an_ssh_node(
    portal: Any, persona: Any, hello_repo: str, ssh_node: SshNode
) -> None:
    staff = portal.manage("portal_user", "ops", "--team", "ops", "--staff").strip().splitlines()[-1]
    name = f"ssh-{uuid.uuid4().hex[:6]}"
    status, node = portal.api(
        "POST", "/api/v1/nodes", staff, {"name": name, "endpoint": ssh_node.endpoint}
    )
    assert status == 201, node
    assert node["reachable"], node["last_error"]
    assert node["engine_version"] and node["native_platforms"][0] == "linux/amd64"
    # A remote node's emulators are what its BuildKit reports (Debian's build lists no arm/v7).
    assert "linux/arm64" in node["emulated_platforms"]
    _, nodes = portal.api("GET", "/api/v1/nodes", staff)
    local = next(n for n in nodes["nodes"] if n["name"] == "local")
    portal.api("PATCH", f"/api/v1/nodes/{local['id']}", staff, {"enabled": False})
    try:
        project_id, image = go_project(portal, persona, hello_repo, "ssh-node", PLATFORMS[:2])
        status, build = portal.api(
            "POST", f"/api/v1/projects/{project_id}/builds", persona.token, {"strategy": "emulate"}
        )
        assert {s["node"] for s in build["plan"]["steps"]} == {name}
        build = wait_finished(portal, persona.token, build["id"], timeout=600)
        assert build["state"] == "succeeded", build["reason"]
        assert {row["node"] for row in build["platforms"].values()} == {name}
        digest, _ = registry_index(image, "latest")
        assert digest == build["manifest"]["digest"]
        assert set(build["manifest"]["platforms"]) == set(PLATFORMS[:2])
    finally:
        portal.api("PATCH", f"/api/v1/nodes/{local['id']}", staff, {"enabled": True})
        portal.api("PATCH", f"/api/v1/nodes/{node['id']}", staff, {"enabled": False})
