"""The whole path through the API: register, build three platforms for real, watch the
websocket, verify the registry's index, run every image under QEMU, check the ledger."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import websockets

from stack import (
    EXPECTED_OUTPUT,
    PLATFORMS,
    platform_manifests,
    registry_index,
    run_image,
    unique_image,
)

FINISHED = {"succeeded", "failed", "cancelled"}


async def _watch(url: str, token: str, timeout: float) -> tuple[list[dict[str, Any]], str]:
    """Collect every line the websocket sends until the build finishes."""
    lines: list[dict[str, Any]] = []
    state = ""
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        deadline = time.monotonic() + timeout
        while state not in FINISHED:
            message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            if message["type"] == "lines":
                lines.extend(message["lines"])
            elif message["type"] == "status":
                state = message["state"]
        # lines published just before the final status are already in; drain briefly
        try:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                if message["type"] == "lines":
                    lines.extend(message["lines"])
        except (TimeoutError, websockets.ConnectionClosed):
            pass
    return lines, state


def test_go_hello_world_three_platforms_through_the_api(
    portal: Any, persona: Any, hello_repo: str
) -> None:
    token = persona.token
    image = unique_image("hello-api")
    status, project = portal.api(
        "POST",
        "/api/v1/projects",
        token,
        {
            "team": persona.team,
            "name": "hello-api",
            "language": "go",
            "git_url": hello_repo,
            "ref": "main",
            "image": image,
            "platforms": ["amd64", "aarch64", "linux/arm/v7"],
            "options": {"ldflags": "-s -w -X 'main.note=two words'"},
        },
    )
    assert status == 201, project
    assert project["platforms"] == PLATFORMS
    status, dockerfile = portal.api("GET", f"/api/v1/projects/{project['id']}/dockerfile", token)
    assert status == 200 and "FROM --platform=$BUILDPLATFORM" in dockerfile

    status, build = portal.api(
        "POST", f"/api/v1/projects/{project['id']}/builds", token, {"tags": ["v1", "latest"]}
    )
    assert status == 201, build
    ws_url = portal.url.replace("http://", "ws://") + f"/ws/builds/{build['id']}/?format=json"
    lines, state = asyncio.run(_watch(ws_url, token, timeout=600))

    status, result = portal.api("GET", f"/api/v1/builds/{build['id']}", token)
    assert state == result["state"] == "succeeded", (
        result["reason"],
        [ln["text"] for ln in lines[-20:]],
    )

    # The websocket saw every line, in order, exactly once, matching the stored log.
    seqs = [line["seq"] for line in lines]
    assert seqs == list(range(1, len(seqs) + 1))
    status, log = portal.api("GET", f"/api/v1/builds/{build['id']}/log", token)
    assert [(ln["seq"], ln["text"]) for ln in log["lines"]] == [
        (ln["seq"], ln["text"]) for ln in lines
    ]
    assert {"linux/amd64", "linux/arm64", "linux/arm/v7"} <= {ln["platform"] for ln in lines}
    # BuildKit pushed to the build's staging tag (buildx did not push it a second time through
    # the engine); the portal tagged v1 only after the architecture checks.
    texts = [ln["text"] for ln in lines]
    staging = rf":crossport-build-{build['id']}-\S+@sha256:\w+ .*done"
    assert [t for t in texts if re.search(r"pushing manifest for \S+" + staging, t)]
    assert not [t for t in texts if "with docker" in t]
    checks = [t for t in texts if t.startswith("Crossport: architecture check")]
    tagged = [n for n, t in enumerate(texts) if t == f"Crossport: tagged {image}:v1"]
    assert len(checks) == 3 and tagged and texts.index(checks[-1]) < tagged[0]

    # The registry's index holds exactly the requested platforms, attestations aside.
    manifest = result["manifest"]
    digest, index = registry_index(image, "v1")
    assert manifest["digest"] == digest
    assert registry_index(image, "latest")[0] == digest
    platform_entries = platform_manifests(index)
    assert platform_entries == manifest["platforms"]
    assert sorted(platform_entries) == sorted(PLATFORMS)
    # OCI annotations on the index itself: where it came from.
    assert index["annotations"]["org.opencontainers.image.revision"] == result["commit"]
    assert index["annotations"]["org.opencontainers.image.source"] == hello_repo
    assert "unknown/unknown" not in manifest["platforms"]

    # Each image runs (under QEMU for the arm ones) and prints its own architecture.
    for platform in PLATFORMS:
        assert run_image(f"{image}@{digest}", platform) == EXPECTED_OUTPUT[platform]

    # The ledger's digests equal the registry's.
    status, ledger = portal.api("GET", f"/api/v1/manifests?project={project['id']}", token)
    assert sorted(r["tag"] for r in ledger["manifests"]) == [f"{image}:latest", f"{image}:v1"]
    for record in ledger["manifests"]:
        assert record["digest"] == digest
        assert record["platforms"] == platform_entries
        assert record["source"]["commit"] == result["commit"] and len(result["commit"]) == 40
        assert record["pushed_by"] == persona.username


def test_bad_input_changes_nothing(portal: Any, persona: Any, hello_repo: str) -> None:
    token = persona.token
    status, before = portal.api("GET", "/api/v1/projects", token)
    for field, value in [
        ("image", "localhost:5000/E2E/Bad"),
        ("platforms", ["linux/sparc"]),
        ("git_url", "ext::sh -c id"),
        ("git_url", "-oProxyCommand=id"),
        ("options", {"ldflags": "x\nRUN id"}),
        ("name", "n" * 200),
    ]:
        body = {
            "team": persona.team,
            "name": "bad",
            "language": "go",
            "git_url": hello_repo,
            "image": unique_image("bad"),
            "platforms": ["linux/amd64"],
            field: value,
        }
        status, answer = portal.api("POST", "/api/v1/projects", token, body)
        assert status == 400, (field, answer)
    assert portal.api("GET", "/api/v1/projects", token)[1] == before
