"""Isolation between teams on one builder node, on the real stack (127.0.0.1 only).

(a) Cache mounts: team A's build writes a marker into a cache mount (`id=shared`); team B's build
with the same mount id records what it finds in an image file, read back by running the pushed
image: nothing. A second build of team A's finds A's marker, so the isolation is not vacuous.
A `# syntax=` frontend, which could ignore the namespace, is refused when saved.
(b) Node pools: with the local node reserved for team A, team B's build runs on a shared node
(another node on the same engine) and never on the reserved one; with no shared node left it
fails at planning, saying why without naming the team. Team A's build runs on its node.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from stack import go_project, login_session, run_image, wait_finished

AMD64 = ["linux/amd64"]  # one platform: the cache mount lives on one node, the test stays quick
REFUSAL = "the nodes that serve it are reserved for other teams"
HEADLINE = "no node open to this team can build linux/amd64: " + REFUSAL


def _member(portal: Any, portal_with: Any, prefix: str) -> Any:
    """A team admin (conftest.Persona) of a team of its own."""
    suffix = uuid.uuid4().hex[:6]
    return portal_with.persona(portal, f"{prefix}-{suffix}", f"{prefix}-team-{suffix}")


@pytest.fixture(scope="module")
def team_a(portal: Any, portal_with: Any) -> Any:
    return _member(portal, portal_with, "iso-a")


@pytest.fixture(scope="module")
def team_b(portal: Any, portal_with: Any) -> Any:
    return _member(portal, portal_with, "iso-b")


@pytest.fixture(scope="module")
def staff_token(portal: Any) -> str:
    out = portal.manage("portal_user", "iso-ops", "--team", "iso-ops", "--staff")
    return str(out.strip().splitlines()[-1])


def _alpine() -> str:
    return f"{os.environ['PORTAL_BASE_IMAGE_MIRROR']}/alpine:3.20"


def writer() -> str:
    nonce = uuid.uuid4().hex  # a RUN of its own: never a layer cache hit
    return (
        f"FROM {_alpine()}\n"
        f"RUN --mount=type=cache,target=/cache,id=shared echo A-{nonce} > /cache/marker\n"
        f'CMD ["true"]\n'
    )


def probe() -> str:
    """Records the marker it finds in the cache mount (or `absent`) in /seen, shown on run."""
    nonce = uuid.uuid4().hex
    return (
        f"FROM {_alpine()}\n"
        f"RUN --mount=type=cache,target=/cache,id=shared echo probe-{nonce} && "
        "(cat /cache/marker > /seen 2>/dev/null || echo absent > /seen)\n"
        'CMD ["cat", "/seen"]\n'
    )


def _project(portal: Any, member: Any, repo: str, name: str) -> tuple[int, str]:
    return go_project(portal, member, repo, name, platforms=AMD64)


def _save_dockerfile(portal: Any, member: Any, project_id: int, text: str) -> str:
    """Save a custom Dockerfile through the edit page, as a person does; the page it lands on."""
    session = login_session(portal, member)
    return str(session(f"/projects/{project_id}/Dockerfile/edit", {"dockerfile": text}))


def _dockerfile(portal: Any, member: Any, project_id: int) -> str:
    _, text = portal.api("GET", f"/api/v1/projects/{project_id}/dockerfile", member.token)
    return str(text)


def _build(portal: Any, member: Any, project_id: int) -> dict[str, Any]:
    status, build = portal.api("POST", f"/api/v1/projects/{project_id}/builds", member.token, {})
    assert status == 201, build
    return dict(build)


def _built(portal: Any, member: Any, project_id: int) -> dict[str, Any]:
    build = wait_finished(portal, member.token, _build(portal, member, project_id)["id"], 300)
    assert build["state"] == "succeeded", build["reason"]
    return build


def _nodes(build: dict[str, Any]) -> set[str]:
    return {row["node"] for row in build["platforms"].values()}


def test_cache_mounts_are_per_team(portal: Any, team_a: Any, team_b: Any, hello_repo: str) -> None:
    a_writes, _ = _project(portal, team_a, hello_repo, "iso-writer")
    a_reads, a_image = _project(portal, team_a, hello_repo, "iso-reader")
    b_reads, b_image = _project(portal, team_b, hello_repo, "iso-reader")
    marker = writer()
    for member, project_id, text in (
        (team_a, a_writes, marker),
        (team_a, a_reads, probe()),
        (team_b, b_reads, probe()),
    ):
        _save_dockerfile(portal, member, project_id, text)
        assert _dockerfile(portal, member, project_id) == text

    # A frontend of the Dockerfile's choosing could ignore the namespace: refused when saved.
    before = _dockerfile(portal, team_b, b_reads)
    page = _save_dockerfile(portal, team_b, b_reads, f"# syntax=docker/dockerfile:1\n{before}")
    assert "is refused" in page and "cache mounts apart" in page
    assert _dockerfile(portal, team_b, b_reads) == before, "nothing saved"

    wrote = _built(portal, team_a, a_writes)
    assert "--build-arg=BUILDKIT_CACHE_MOUNT_NS=" in _log(portal, team_a, wrote["id"])
    b_build = _built(portal, team_b, b_reads)
    a_build = _built(portal, team_a, a_reads)
    assert _nodes(wrote) == _nodes(b_build) == _nodes(a_build), "one BuildKit, one cache"

    expected_marker = marker.split("echo ", 1)[1].split(" >", 1)[0]
    assert run_image(f"{b_image}@{b_build['manifest']['digest']}", AMD64[0]) == "absent"
    assert run_image(f"{a_image}@{a_build['manifest']['digest']}", AMD64[0]) == expected_marker


def _log(portal: Any, member: Any, build_id: int) -> str:
    _, log = portal.api("GET", f"/api/v1/builds/{build_id}/log?after=0", member.token)
    lines = log["lines"] if isinstance(log, dict) else []
    return "\n".join(str(line.get("text", "")) for line in lines)


@pytest.fixture
def pool(portal: Any, staff_token: str, team_a: Any) -> Iterator[dict[str, Any]]:
    """The local node reserved for team A, and a shared node on the same engine; both as
    before afterwards (later tests share the portal)."""
    _, listed = portal.api("GET", "/api/v1/nodes", staff_token)
    local = next(n for n in listed["nodes"] if n["name"] == "local")
    shared: dict[str, Any] = {}
    try:
        status, answer = portal.api(
            "PATCH", f"/api/v1/nodes/{local['id']}", staff_token, {"reserved_for": [team_a.team]}
        )
        assert status == 200 and answer["reserved_for"] == [team_a.team], answer
        body = {"name": f"shared-{uuid.uuid4().hex[:6]}", "endpoint": local["endpoint"]}
        status, shared = portal.api("POST", "/api/v1/nodes", staff_token, body)
        assert status == 201 and shared["reachable"], shared
        assert shared["reserved_for"] == []
        yield {"local": local, "shared": shared}
    finally:
        portal.api("PATCH", f"/api/v1/nodes/{local['id']}", staff_token, {"reserved_for": []})
        if shared.get("id"):
            portal.api("DELETE", f"/api/v1/nodes/{shared['id']}", staff_token)


def test_a_reserved_node_never_runs_another_teams_build(
    portal: Any,
    team_a: Any,
    team_b: Any,
    hello_repo: str,
    staff_token: str,
    pool: dict[str, Any],
) -> None:
    b_project, _ = _project(portal, team_b, hello_repo, "iso-pool")
    a_project, _ = _project(portal, team_a, hello_repo, "iso-pool")
    for member, project_id in ((team_b, b_project), (team_a, a_project)):
        _save_dockerfile(portal, member, project_id, probe())

    placed = _built(portal, team_b, b_project)
    assert _nodes(placed) and "local" not in _nodes(placed), placed["platforms"]

    # No shared node left: B's build fails at planning, before anything runs.
    status, drained = portal.api(
        "PATCH", f"/api/v1/nodes/{pool['shared']['id']}", staff_token, {"enabled": False}
    )
    assert status == 200 and drained["enabled"] is False
    queued = _build(portal, team_b, b_project)
    assert queued["plan"]["error"].startswith(HEADLINE), queued["plan"]
    build = _failed_or_waiting(portal, team_b, queued["id"])
    assert team_a.team not in build["reason"] and "local" not in build["reason"]
    assert _nodes(build) == {None}, "no platform was placed on any node"

    ran = _built(portal, team_a, a_project)
    assert _nodes(ran) == {"local"}, ran["platforms"]


def _failed_or_waiting(portal: Any, member: Any, build_id: int) -> dict[str, Any]:
    """Failed at planning; or, when another test of the session left a shared node enabled
    but down, waiting for it (the worker plans again as it may come back): cancelled here."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, build = portal.api("GET", f"/api/v1/builds/{build_id}", member.token)
        if build["state"] == "failed":
            assert build["reason"] == f"no build plan: {HEADLINE}", build["reason"]
            return dict(build)
        time.sleep(0.3)
    assert build["state"] == "queued" and build["plan"]["error"].startswith(HEADLINE)
    portal.api("POST", f"/api/v1/builds/{build_id}/cancel", member.token, {})
    return dict(build) | {"reason": build["plan"]["error"]}
