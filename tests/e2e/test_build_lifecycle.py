"""Cancel and worker death against the real stack: nothing is left running, nothing is pushed,
and a build never stays "running" without a live worker."""

from __future__ import annotations

import time
import urllib.error
from typing import Any

import pytest

from stack import buildx_processes, go_project, registry_index, wait_finished


def _wait_for_line(
    portal: Any, token: str, build_id: int, needle: str, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, log = portal.api("GET", f"/api/v1/builds/{build_id}/log", token)
        if any(needle in line["text"] for line in log["lines"]):
            return
        assert log["state"] in ("queued", "running"), log["lines"][-5:]
        time.sleep(0.3)
    raise AssertionError(f"no log line with {needle!r} within {timeout}s")


def _assert_not_pushed(image: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        registry_index(image, "latest")
    assert info.value.code == 404


def test_cancel_interrupts_buildx_and_leaves_nothing(
    portal: Any, persona: Any, slow_repo: str
) -> None:
    project_id, image = go_project(portal, persona, slow_repo, "slow-cancel")
    status, build = portal.api("POST", f"/api/v1/projects/{project_id}/builds", persona.token, {})
    assert status == 201
    _wait_for_line(portal, persona.token, build["id"], "go build")
    assert buildx_processes(), "buildx should be running now"
    started = time.monotonic()
    status, answer = portal.api("POST", f"/api/v1/builds/{build['id']}/cancel", persona.token)
    assert status == 202
    result = wait_finished(portal, persona.token, build["id"], timeout=60)
    assert result["state"] == "cancelled", result["reason"]
    assert result["reason"] == "cancelled on request"
    # SIGINT, then SIGKILL after the 5 s grace: well under the compile time.
    assert time.monotonic() - started < 30
    assert buildx_processes() == []
    assert list((portal.data_dir / "workspaces").iterdir()) == []
    _assert_not_pushed(image)


def test_a_killed_worker_fails_its_build_with_worker_lost(
    portal: Any, persona: Any, slow_repo: str
) -> None:
    project_id, image = go_project(portal, persona, slow_repo, "slow-killed")
    status, build = portal.api("POST", f"/api/v1/projects/{project_id}/builds", persona.token, {})
    assert status == 201
    _wait_for_line(portal, persona.token, build["id"], "go build")
    portal.kill_build_runners()
    # buildx dies with its worker (parent-death signal): nothing keeps building.
    deadline = time.monotonic() + 10
    while buildx_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert buildx_processes() == []
    portal.start_build_runners()
    # The lease is 15 s in these tests; a new runner's reaper fails the build.
    result = wait_finished(portal, persona.token, build["id"], timeout=90)
    assert result["state"] == "failed"
    assert result["reason"].startswith("worker lost"), result["reason"]
    _assert_not_pushed(image)


def test_a_rolling_restart_hands_the_running_build_to_a_new_worker(
    portal: Any, persona: Any, slow_repo: str
) -> None:
    """SIGTERM to each worker in turn, a new one started after each (as an orchestrator rolls
    them): the old ones exit 0; the build they held goes back to the queue after the drain time
    and a new worker runs it to the push, once."""
    if not portal.scale_out:
        pytest.skip("scale-out configuration only: the embedded worker is the server itself")
    portal.kill_build_runners()
    portal.env["PORTAL_WORKER_DRAIN_SECONDS"] = "2"
    portal.start_build_runners()
    try:
        project_id, image = go_project(portal, persona, slow_repo, "slow-rolling")
        status, build = portal.api(
            "POST", f"/api/v1/projects/{project_id}/builds", persona.token, {}
        )
        assert status == 201
        _wait_for_line(portal, persona.token, build["id"], "go build")
        old = list(portal.workers)
        for proc in old:
            proc.terminate()  # SIGTERM
            portal.start_worker()
            assert proc.wait(timeout=60) == 0
        portal.workers = [w for w in portal.workers if w not in old]
        result = wait_finished(portal, persona.token, build["id"], timeout=600)
        assert result["state"] == "succeeded", result["reason"]
        _, log = portal.api("GET", f"/api/v1/builds/{build['id']}/log", persona.token)
        texts = [line["text"] for line in log["lines"]]
        # Handed back by the worker that held it, and again if the next old worker took it
        # before its own turn came; pushed and tagged once, by a worker of the new set.
        handed_back = sum("goes back to the queue and starts again" in t for t in texts)
        assert 1 <= handed_back <= len(old)
        assert sum(t.startswith("Crossport: succeeded") for t in texts) == 1
        assert texts.count(f"Crossport: tagged {image}:latest") == 1
        assert registry_index(image, "latest")[0] == result["manifest"]["digest"]
    finally:
        portal.kill_build_runners()
        portal.env.pop("PORTAL_WORKER_DRAIN_SECONDS", None)
        portal.start_build_runners()
