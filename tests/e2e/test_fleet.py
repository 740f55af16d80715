"""Two nodes: the local engine and a second engine on 127.0.0.1 with mutual TLS (certificates
made here). A native build spreads platforms over both in parallel and merges one index;
killing the second engine mid-build fails its platforms, stops the rest, and the node turns
unhealthy so the next build avoids it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from stack import (
    EXPECTED_OUTPUT,
    PLATFORMS,
    SecondEngine,
    buildx_processes,
    go_project,
    platform_manifests,
    registry_index,
    run_image,
    wait_finished,
)


@pytest.fixture(scope="module")
def second(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondEngine]:
    engine = SecondEngine(tmp_path_factory.mktemp("second-engine"))
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def staff_token(portal: Any) -> str:
    out = portal.manage("portal_user", "ops", "--team", "ops", "--staff")
    return str(out.strip().splitlines()[-1])


def _register(portal: Any, token: str, second: SecondEngine) -> dict[str, Any]:
    name = f"second-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "endpoint": second.endpoint, "tls": second.client_tls, "max_builds": 2}
    # Wrong material first: refused, nothing saved.
    status, answer = portal.api(
        "POST", "/api/v1/nodes", token, body | {"tls": second.client_tls | {"ca": ""}}
    )
    assert status == 400, answer
    status, node = portal.api("POST", "/api/v1/nodes", token, body)
    assert status == 201, node
    try:
        assert node["reachable"], node["last_error"]
        # Debian's engine reports its bundled BuildKit unstamped: named by the engine it came with.
        assert node["engine_version"] and node["buildkit"] in (
            node["buildkit_version"],
            f"bundled with Docker {node['engine_version']}",
        )
        assert not node["buildkit_version"].startswith("v0.0.0")
        assert node["native_platforms"][0] == "linux/amd64"
        assert {"linux/arm64", "linux/arm/v7"} <= set(node["emulated_platforms"])
        assert node["free_disk_bytes"] and node["free_disk_bytes"] > 0
        assert node["tls"] and "PRIVATE KEY" not in json.dumps(node)
    except AssertionError:
        # Later tests share the portal: a node that fails its checks leaves the rotation.
        portal.api("PATCH", f"/api/v1/nodes/{node['id']}", token, {"enabled": False})
        raise
    return dict(node)


def _runs_overlap(platforms: dict[str, Any], a: str, b: str) -> bool:
    def span(name: str) -> tuple[datetime, datetime]:
        row = platforms[name]
        return datetime.fromisoformat(row["started_at"]), datetime.fromisoformat(row["finished_at"])

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


def test_native_build_spreads_over_two_nodes_and_survives_losing_one(
    portal: Any,
    persona: Any,
    hello_repo: str,
    slow_repo: str,
    second: SecondEngine,
    staff_token: str,
) -> None:
    node = _register(portal, staff_token, second)
    try:
        _native_build_over_both(portal, persona, hello_repo, second, node)
        _losing_the_second_node(portal, persona, hello_repo, slow_repo, second, node, staff_token)
    finally:
        # Later tests share the portal: take the node out of rotation.
        portal.api("PATCH", f"/api/v1/nodes/{node['id']}", staff_token, {"enabled": False})


def _native_build_over_both(
    portal: Any, persona: Any, repo: str, second: SecondEngine, node: dict[str, Any]
) -> None:
    project_id, image = go_project(portal, persona, repo, "fleet-native")
    status, build = portal.api(
        "POST", f"/api/v1/projects/{project_id}/builds", persona.token, {"strategy": "native"}
    )
    assert status == 201, build
    assert build["strategy"] == "native" and build["plan"]["preview"]
    build = wait_finished(portal, persona.token, build["id"], timeout=600)
    assert build["state"] == "succeeded", build["reason"]
    platforms = build["platforms"]
    used = {row["node"] for row in platforms.values()}
    assert used == {"local", node["name"]}, platforms
    # Runs on different nodes ran at the same time.
    on_second = [p for p, row in platforms.items() if row["node"] == node["name"]]
    on_local = [p for p, row in platforms.items() if row["node"] == "local"]
    assert _runs_overlap(platforms, on_second[0], on_local[0]), platforms
    assert all(row["seconds"] and row["seconds"] > 0 for row in platforms.values())
    # The merged index in the registry: exactly the three platforms, each the digest its own
    # run pushed, attestations kept.
    digest, index = registry_index(image, "latest")
    assert digest == build["manifest"]["digest"]
    by_platform = platform_manifests(index)
    assert by_platform == {p: row["digest"] for p, row in platforms.items()}
    assert index["annotations"]["org.opencontainers.image.revision"] == build["commit"]
    for platform in PLATFORMS:
        assert run_image(f"{image}@{digest}", platform) == EXPECTED_OUTPUT[platform]
    # The second engine really built: its BuildKit has cache records now.
    assert "Total:" in second.docker("buildx", "du").stdout
    # The ledger names both nodes.
    _, ledger = portal.api("GET", f"/api/v1/manifests?project={project_id}", persona.token)
    assert set(ledger["manifests"][0]["builder_node"].split(", ")) == {"local", node["name"]}


def _losing_the_second_node(
    portal: Any,
    persona: Any,
    repo: str,
    slow_repo: str,
    second: SecondEngine,
    node: dict[str, Any],
    staff_token: str,
) -> None:
    project_id, image = go_project(portal, persona, slow_repo, "fleet-lost")
    status, build = portal.api(
        "POST", f"/api/v1/projects/{project_id}/builds", persona.token, {"strategy": "native"}
    )
    assert status == 201, build
    build_id = build["id"]
    deadline = time.monotonic() + 300
    while True:  # wait until the second node is compiling
        _, log = portal.api("GET", f"/api/v1/builds/{build_id}/log", persona.token)
        _, build = portal.api("GET", f"/api/v1/builds/{build_id}", persona.token)
        mine = [p for p, row in build["platforms"].items() if row["node"] == node["name"]]
        if mine and any("go build" in ln["text"] and ln["platform"] in mine for ln in log["lines"]):
            break
        assert build["state"] == "running" or build["state"] == "queued", build["reason"]
        assert time.monotonic() < deadline, "the second node never started compiling"
        time.sleep(0.3)
    second.stop()
    stopped = time.monotonic()
    build = wait_finished(portal, persona.token, build_id, timeout=120)
    assert time.monotonic() - stopped < 60
    assert build["state"] == "failed" and build["fault"] == "system", build
    assert f"on node {node['name']}" in build["reason"], build["reason"]
    for platform in mine:
        row = build["platforms"][platform]
        assert row["state"] == "failed" and f"on node {node['name']}" in row["reason"], row
    assert not [p for p in buildx_processes() if f"crossport-build-{build_id}-" in p]
    assert not list(Path(portal.data_dir, "workspaces").glob(f"build-{build_id}-*"))
    # The node is unhealthy now, with the reason; the next build avoids it.
    _, checked = portal.api("GET", f"/api/v1/nodes/{node['id']}", staff_token)
    assert checked["reachable"] is False and checked["last_error"], checked
    hello_id, _ = go_project(portal, persona, repo, "fleet-after")
    status, build = portal.api(
        "POST", f"/api/v1/projects/{hello_id}/builds", persona.token, {"strategy": "native"}
    )
    assert {s["node"] for s in build["plan"]["steps"]} == {"local"}
    build = wait_finished(portal, persona.token, build["id"], timeout=600)
    assert build["state"] == "succeeded", build["reason"]
    assert {row["node"] for row in build["platforms"].values()} == {"local"}
