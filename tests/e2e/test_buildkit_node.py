"""A standalone BuildKit daemon as a builder node, for real: `buildkitd` from the stack's
BuildKit image (PORTAL_BUILDKIT_IMAGE) listening on 127.0.0.1 with mutual TLS, registered
through the API as kind `buildkit`, checked healthy (version, native and emulated platforms),
then the only enabled node while a two-platform Go project builds on it. The daemon's own cache
proves it did the work; stopped, the next check says why it is unusable.

Runs in the embedded configuration only: the daemon and the buildx remote builder are the same
whatever runs the portal, and the scale-out run would build the same image again."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from certs import client_tls, issue, make_ca

from stack import free_port, go_project, registry_index, registry_json, wait_finished

TWO = ["linux/amd64", "linux/arm64"]


class Daemon:
    def __init__(self, root: Path) -> None:
        self.name = f"crossport-e2e-buildkitd-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        ca = make_ca("buildkitd test CA")
        server, client = issue(ca, "buildkitd", server=True), issue(ca, "portal")
        self.tls = client_tls(ca, client)
        self.certs = root / "certs"
        self.certs.mkdir()
        files = {
            "ca.pem": ca.cert_pem,
            "server.pem": server.cert_pem,
            "server-key.pem": server.key_pem,
            "client.pem": client.cert_pem,
            "client-key.pem": client.key_pem,
        }
        for name, text in files.items():
            (self.certs / name).write_text(text)
        # What an operator writes for their own daemon: the registries it pushes to and pulls
        # from over plain HTTP (the stack's, on loopback, reached through the host's network).
        self.config = root / "buildkitd.toml"
        self.config.write_text('[registry."localhost:5000"]\n  http = true\n')

    def start(self) -> None:
        image = os.environ["PORTAL_BUILDKIT_IMAGE"]
        subprocess.run(
            ["docker", "run", "-d", f"--name={self.name}", "--privileged", "--network=host"]
            + [f"--volume={self.certs}:/certs:ro"]
            + [f"--volume={self.config}:/etc/buildkit/buildkitd.toml:ro", image]
            + [f"--addr=tcp://127.0.0.1:{self.port}", "--config=/etc/buildkit/buildkitd.toml"]
            + ["--tlscacert=/certs/ca.pem", "--tlscert=/certs/server.pem"]
            + ["--tlskey=/certs/server-key.pem", "--allow-insecure-entitlement=network.host"],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(self.logs()) from None
                time.sleep(0.3)

    def buildctl(self, *args: str) -> str:
        """buildctl inside the daemon's container, as a client with the client certificate."""
        return subprocess.run(
            ["docker", "exec", self.name, "buildctl", f"--addr={self.endpoint}"]
            + ["--tlscacert=/certs/ca.pem", "--tlscert=/certs/client.pem"]
            + ["--tlskey=/certs/client-key.pem", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def cached(self) -> str:
        """The size of the daemon's build cache, as `buildctl du` totals it ("0B" when empty)."""
        total = [ln for ln in self.buildctl("du").splitlines() if ln.startswith("Total:")]
        return total[0].split()[-1]

    def logs(self) -> str:
        done = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True)
        return (done.stdout + done.stderr)[-3000:]

    def stop(self) -> None:
        subprocess.run(["docker", "rm", "-fv", self.name], capture_output=True)


@pytest.fixture
def daemon(stack: None, portal: Any, tmp_path: Path) -> Iterator[Daemon]:
    if portal.scale_out:
        pytest.skip("embedded configuration only (the daemon is the same whatever runs the portal)")
    daemon = Daemon(tmp_path)
    daemon.start()
    yield daemon
    daemon.stop()


def register(portal: Any, token: str, daemon: Daemon, name: str) -> dict[str, Any]:
    """The daemon as a `buildkit` node, through the API; checked reachable."""
    status, node = portal.api(
        "POST",
        "/api/v1/nodes",
        token,
        {"name": name, "kind": "buildkit", "endpoint": daemon.endpoint, "tls": daemon.tls},
    )
    assert status == 201 and node["reachable"], (node, daemon.logs())
    return node


@contextlib.contextmanager
def the_only_node(portal: Any, token: str, node: dict[str, Any]) -> Iterator[None]:
    """Only `node` takes builds meanwhile: the other enabled nodes are disabled, then back."""
    _, listed = portal.api("GET", "/api/v1/nodes", token)
    others = [n["id"] for n in listed["nodes"] if n["enabled"] and n["id"] != node["id"]]
    for pk in others:
        portal.api("PATCH", f"/api/v1/nodes/{pk}", token, {"enabled": False})
    try:
        yield
    finally:
        for pk in others:
            portal.api("PATCH", f"/api/v1/nodes/{pk}", token, {"enabled": True})


def test_a_standalone_buildkitd_with_mutual_tls_is_a_node_that_builds(
    portal: Any, persona: Any, hello_repo: str, daemon: Daemon
) -> None:
    token = portal.manage("portal_user", "bk-ops", "--team", "ops", "--staff").split()[-1]
    name = f"bk-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    node = register(portal, token, daemon, name)
    print(f"registered and checked in {time.monotonic() - started:.1f}s")
    assert node["kind"] == "buildkit" and node["buildkit_version"].startswith("v0.13.2")
    assert node["native_platforms"][0] == "linux/amd64"
    assert "linux/arm64" in node["emulated_platforms"]  # the host's binfmt emulators
    assert daemon.tls["key"] not in str(node)

    with the_only_node(portal, token, node):
        assert daemon.cached() == "0B"  # nothing built there yet
        project_id, image = go_project(portal, persona, hello_repo, "buildkit-node", TWO)
        status, queued = portal.api(
            "POST", f"/api/v1/projects/{project_id}/builds", persona.token, {"tags": ["bk"]}
        )
        assert status == 201, queued
        started = time.monotonic()
        build = wait_finished(portal, persona.token, queued["id"], timeout=900)
        print(f"two-platform build on the daemon: {time.monotonic() - started:.1f}s")
        assert build["state"] == "succeeded", build["reason"]
        assert {p["node"] for p in build["platforms"].values()} == {name}
        digest, index = registry_index(image, "bk")
        assert build["manifest"]["digest"] == digest
        pushed = {
            f"{m['platform']['os']}/{m['platform']['architecture']}"
            for m in index["manifests"]
            if m["platform"]["os"] != "unknown"  # attestation manifests
        }
        assert pushed == set(TWO)
        assert {a["platform"] for a in build["attestations"]} == set(TWO)  # provenance
        assert daemon.cached() != "0B", daemon.buildctl("du")  # the daemon did the work

    daemon.stop()
    status, checked = portal.api("POST", f"/api/v1/nodes/{node['id']}/check", token)
    assert status == 200 and not checked["reachable"] and checked["last_error"], checked
    assert portal.api("DELETE", f"/api/v1/nodes/{node['id']}", token)[0] == 204


def test_a_node_that_never_built_the_project_starts_from_its_registry_cache(
    portal: Any, persona: Any, hello_repo: str, daemon: Daemon
) -> None:
    """Built once on the stack's engine, the project's layers are in the registry (its cache
    tag); the same commit on the cold daemon then takes every step from that cache."""
    project_id, image = go_project(portal, persona, hello_repo, "warm-anywhere", TWO)
    builds = f"/api/v1/projects/{project_id}/builds"
    status, first = portal.api("POST", builds, persona.token, {"strategy": "emulate"})
    assert status == 201, first
    first = wait_finished(portal, persona.token, first["id"], timeout=900)
    assert first["state"] == "succeeded", first["reason"]
    cache = registry_json(image, "manifests", "crossport-cache-linux-amd64_linux-arm64")
    assert cache["layers"], cache  # the project's layers, in the registry

    token = portal.manage("portal_user", "bk-ops2", "--team", "ops", "--staff").split()[-1]
    node = register(portal, token, daemon, f"cold-{uuid.uuid4().hex[:6]}")
    with the_only_node(portal, token, node):
        assert daemon.cached() == "0B"  # a node that never built anything
        status, again = portal.api("POST", builds, persona.token, {"tags": ["warm"]})
        assert status == 201, again
        again = wait_finished(portal, persona.token, again["id"], timeout=900)
    assert again["state"] == "succeeded", again["reason"]
    assert {p["node"] for p in again["platforms"].values()} == {node["name"]}
    log = portal.api("GET", f"/api/v1/builds/{again['id']}/log", persona.token)[1]
    texts = [line["text"] for line in log["lines"]]
    compiles = [t.split()[0] for t in texts if t.startswith("#") and "go build" in t]
    assert compiles, texts[-40:]
    # Every compile came from the cache; the counts on each platform say so too.
    assert all(f"{number} CACHED" in texts for number in compiles), texts[-40:]
    for platform, state in again["platforms"].items():
        assert state["steps_cached"] >= 2 and state["steps_run"] == 0, (platform, state)
    portal.api("DELETE", f"/api/v1/nodes/{node['id']}", token)
