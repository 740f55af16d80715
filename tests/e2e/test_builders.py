"""Named buildx builders against the real CLI and engines, with the BuildKit image the test
stack makes (PORTAL_BUILDKIT_IMAGE): create from nodes, append and remove a node, inspect,
bootstrap, remove; then the article's third way for real: a builder of two engines, each serving
its own platform, made through the API, building and pushing one index through one `buildx
build`, each platform on its node (checked on the nodes), and a node's leave failing the next
build that needs it before it starts."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from builds import builders
from builds.models import BuilderNode, BuildxBuilder
from builds.nodes import DEFAULT_ENDPOINT
from portal.grammar import InvalidValue
from stack import (
    EXPECTED_OUTPUT,
    SecondEngine,
    go_project,
    platform_manifests,
    registry_index,
    run_image,
    wait_finished,
)

TWO = ["linux/amd64", "linux/arm64"]


@pytest.fixture
def own_config(settings: Any, tmp_path: Any) -> Any:
    settings.DATA_DIR = tmp_path
    return tmp_path / "docker"


def _ls(config: Any) -> str:
    return subprocess.run(
        ["docker", "--config", str(config), "buildx", "ls"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _containers() -> str:
    command = ["docker", "ps", "--all", "--format={{.Names}}"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def test_builder_lifecycle_with_the_articles_commands(
    stack: None, db: Any, own_config: Any
) -> None:
    endpoint = os.environ.get("DOCKER_HOST", DEFAULT_ENDPOINT)
    one = BuilderNode.objects.create(name="one", endpoint=endpoint)
    two = BuilderNode.objects.create(name="two", endpoint=endpoint)
    with pytest.raises(InvalidValue):
        builders.create("--bad", [one])

    outcome = builders.create("fleet", [(one, [])])
    results = outcome.results
    assert outcome.ok and [r.code for r in results] == [0, 0, 0], results
    image = os.environ.get("PORTAL_BUILDKIT_IMAGE", "localhost:5000/library/buildkit:v0.13.2")
    assert results[2].command == (
        f"docker buildx create --name=fleet --driver=docker-container --driver-opt=image={image} "
        f"--driver-opt=network=host --buildkitd-config={own_config.parent}/buildkit/fleet.toml "
        "--node=fleet-one -- crossport-one"
    )
    builder = BuildxBuilder.objects.get(name="fleet")
    assert "fleet-one" in _ls(own_config)

    appended = builders.append(builder, two)
    assert appended.ok, appended
    assert set(builder.nodes.values_list("name", flat=True)) == {"one", "two"}
    inspected = builders.inspect(builder).results[0]
    assert inspected.code == 0 and "fleet-two" in inspected.output, inspected
    assert "docker-container" in inspected.output

    left = builders.leave(builder, two)
    assert left.ok, left
    assert "fleet-two" not in builders.inspect(builder).results[0].output

    booted = builders.bootstrap(builder)
    # The stack's own BuildKit image: no Docker Hub needed.
    assert booted.ok and "running" in booted.results[0].output, booted

    removed = builders.remove(builder)
    assert removed.ok, removed
    assert not BuildxBuilder.objects.exists() and "fleet" not in _ls(own_config)
    assert "buildx_buildkit_fleet-one" not in _containers()


def test_admin_pages_show_commands_and_output(
    stack: None, db: Any, own_config: Any, django_user_model: Any
) -> None:
    admin = django_user_model.objects.create_superuser("root", password="root-password-1")
    node = BuilderNode.objects.create(
        name="one", endpoint=os.environ.get("DOCKER_HOST", DEFAULT_ENDPOINT)
    )
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/admin/builds/buildxbuilder/add/", {"name": "adm", "nodes": [node.pk]}, follow=True
    )
    page = response.content.decode()
    assert "$ docker buildx create --name=adm --driver=docker-container" in page
    builder = BuildxBuilder.objects.get(name="adm")
    page = client.post(
        f"/admin/builds/buildxbuilder/{builder.pk}/manage/", {"action": "inspect"}
    ).content.decode()
    assert "$ docker buildx inspect -- adm" in page and "adm-one" in page
    response = client.post(
        f"/admin/builds/buildxbuilder/{builder.pk}/manage/", {"action": "remove"}, follow=True
    )
    assert not BuildxBuilder.objects.exists()
    assert "removed builder adm" in [str(m) for m in response.context["messages"]]


@pytest.fixture
def second(stack: None, tmp_path: Path) -> Iterator[SecondEngine]:
    engine = SecondEngine(tmp_path / "second-engine")
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


def _layers(repository: str, manifest: str) -> set[str]:
    host, path = repository.split("/", 1)
    request = urllib.request.Request(
        f"http://{host}/v2/{path}/manifests/{manifest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return {layer["digest"] for layer in json.loads(response.read())["layers"]}


def _blobs(docker: Any, container: str) -> set[str]:
    """The digests in a node's BuildKit content store (its container has no shell: docker cp
    streams the folder as a tar)."""
    where = f"{container}:/var/lib/buildkit/runc-overlayfs/content/blobs/sha256"
    proc = docker("cp", where, "-")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout), mode="r|") as tar:
        return {"sha256:" + Path(m.name).name for m in tar if m.isfile()}


def _local_docker(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], capture_output=True, check=True, timeout=120)


def _second_docker(second: SecondEngine) -> Any:
    client = second.root / "client"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DOCKER_HOST": second.endpoint,
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(client),
    }

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["docker", *args], env=env, capture_output=True, check=True, timeout=120
        )

    second.docker("version")  # writes the client certificates
    return run


def _inspected_platforms(portal: Any, name: str) -> dict[str, list[str]]:
    """buildx's own view: node name -> the platforms it was made with (marked `*`)."""
    out = subprocess.run(
        ["docker", "--config", str(Path(portal.data_dir) / "docker"), "buildx", "inspect", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, list[str]] = {}
    node = ""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Name" and value.strip() != name:
            node = value.strip()
        elif key.strip() == "Platforms" and node:
            found[node] = [p.strip()[:-1] for p in value.split(",") if p.strip().endswith("*")]
    return found


def test_a_builder_of_two_engines_builds_each_platform_on_its_node(
    portal: Any, persona: Any, hello_repo: str, second: SecondEngine
) -> None:
    token = portal.manage("portal_user", "builders", "--team", "ops", "--staff").split()[-1]
    status, node = portal.api(
        "POST",
        "/api/v1/nodes",
        token,
        {
            "name": f"arm-{uuid.uuid4().hex[:6]}",
            "endpoint": second.endpoint,
            "tls": second.client_tls,
        },
    )
    assert status == 201 and node["reachable"], node
    _, listed = portal.api("GET", "/api/v1/nodes", token)
    local = next(n for n in listed["nodes"] if n["name"] == "local")
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    body = {
        "name": name,
        "nodes": [
            {"node": local["id"], "platforms": ["linux/amd64"]},
            {"node": node["id"], "platforms": ["linux/arm64"]},
        ],
    }
    second_docker = _second_docker(second)
    config = Path(portal.data_dir) / "buildkit" / f"{name}.toml"
    try:
        started = time.monotonic()
        status, made = portal.api("POST", "/api/v1/builders", token, body)
        assert status == 201, made
        commands = [c["command"] for c in made["commands"]]
        image = os.environ["PORTAL_BUILDKIT_IMAGE"]
        assert f"--driver-opt=image={image}" in commands[2]
        assert (
            f"--buildkitd-config={config} --platform=linux/arm64 --node={name}-{node['name']} "
            f"--append -- crossport-{node['name']}"
        ) in commands[5]
        assert '[registry."localhost:5000"]\n  http = true' in config.read_text()
        status, booted = portal.api("POST", f"/api/v1/builders/{name}/bootstrap", token)
        assert status == 200, booted
        print(f"create + bootstrap: {time.monotonic() - started:.1f}s", commands)
        assert _inspected_platforms(portal, name) == {
            f"{name}-local": ["linux/amd64"],
            f"{name}-{node['name']}": ["linux/arm64"],
        }

        project_id, repository = go_project(portal, persona, hello_repo, "builder-two", TWO)
        status, build = portal.api(
            "POST",
            f"/api/v1/projects/{project_id}/builds",
            persona.token,
            {"strategy": f"builder:{name}"},
        )
        assert status == 201, build
        started = time.monotonic()
        build = wait_finished(portal, persona.token, build["id"], timeout=900)
        print(f"builder:{name} build: {time.monotonic() - started:.1f}s")
        assert build["state"] == "succeeded", build["reason"]
        where = {p: row["node"] for p, row in build["platforms"].items()}
        assert where == {"linux/amd64": "local", "linux/arm64": node["name"]}
        digest, index = registry_index(repository, "latest")
        manifests = platform_manifests(index)
        assert set(manifests) == set(TWO)
        for platform in TWO:
            assert run_image(f"{repository}@{digest}", platform) == EXPECTED_OUTPUT[platform]
        # The nodes themselves: each BuildKit holds its own platform's layers, not the other's.
        amd, arm = (_layers(repository, manifests[p]) for p in TWO)
        on_local = _blobs(_local_docker, f"buildx_buildkit_{name}-local")
        on_second = _blobs(second_docker, f"buildx_buildkit_{name}-{node['name']}")
        assert (amd - arm) & on_local and not (arm - amd) & on_local
        assert (arm - amd) & on_second and not (amd - arm) & on_second

        status, left = portal.api(
            "POST", f"/api/v1/builders/{name}/leave", token, {"node": node["id"]}
        )
        assert status == 200, left
        assert (
            f"buildx_buildkit_{name}-{node['name']}"
            not in second.docker("ps", "--all", "--format={{.Names}}").stdout
        )
        status, build = portal.api(
            "POST",
            f"/api/v1/projects/{project_id}/builds",
            persona.token,
            {"strategy": f"builder:{name}"},
        )
        started = time.monotonic()
        build = wait_finished(portal, persona.token, build["id"], timeout=60)
        assert time.monotonic() - started < 30
        assert build["state"] == "failed", build
        assert build["reason"] == (
            f"no build plan: builder {name} has no node for linux/arm64 (nodes: local: linux/amd64)"
        )
    finally:
        status, removed = portal.api("DELETE", f"/api/v1/builders/{name}", token)
        portal.api("DELETE", f"/api/v1/nodes/{node['id']}", token)
    assert status == 200 and removed["builder"] is None, removed
    assert f"buildx_buildkit_{name}" not in _containers()
    assert not config.exists()
