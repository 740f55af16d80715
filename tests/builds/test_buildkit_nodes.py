"""Standalone BuildKit daemons as nodes (builds/buildkitnodes.py): registered through the API,
checked through a buildx `remote` builder of their own, built on with `--builder`, forgotten
when removed. The docker CLI is the fake engine of tests/fakes.py (the `engines` fixture); the
real daemon with mutual TLS is tests/e2e/test_buildkit_node.py."""

from __future__ import annotations

import stat
from typing import Any

import pytest
from certs import client_tls, issue, make_ca

from builds import buildkitnodes
from builds.models import Build, BuilderNode
from builds.nodes import CommandResult
from builds.services import queue_build
from builds.worker import work_once
from fakes import FakeBackend

INSPECT = """Name:          crossport-node-bk
Driver:        remote

Nodes:
Name:             crossport-node-bk0
Endpoint:         tcp://127.0.0.1:1234
Status:           running
BuildKit version: v0.13.2
Platforms:        linux/amd64, linux/amd64/v2, linux/386, linux/arm64, linux/arm/v7, linux/arm/v6
"""


@pytest.fixture
def buildkit(engines: Any, monkeypatch: Any) -> Any:
    """The fake engine, answering `buildx inspect` as a v0.13.2 amd64 BuildKit with arm
    emulators would."""
    plain = engines.__class__.__call__

    def answer(self: Any, args: list[str]) -> CommandResult:
        result = plain(self, args)
        if result.code == 0 and args[:2] == ["buildx", "inspect"]:
            return CommandResult(result.command, 0, INSPECT)
        return result

    monkeypatch.setattr(engines.__class__, "__call__", answer)
    return engines


@pytest.fixture
def staff(api: Any, django_user_model: Any) -> Any:
    admin = django_user_model.objects.create_superuser("ops", password="ops-password-1")
    return api(admin)


def test_a_loopback_buildkitd_is_registered_and_checked_through_its_own_remote_builder(
    staff: Any, buildkit: Any
) -> None:
    answer = staff.post(
        "/api/v1/nodes", {"name": "bk", "kind": "buildkit", "endpoint": "tcp://127.0.0.1:1234"}
    )
    assert answer.status_code == 201, answer.content
    node = answer.json()
    assert node["kind"] == "buildkit" and node["reachable"] and node["last_error"] == ""
    assert node["buildkit_version"] == "v0.13.2"
    # Its own architecture first, natively; the rest as for an engine (by architecture).
    assert node["native_platforms"] == ["linux/amd64", "linux/amd64/v2"]
    assert node["emulated_platforms"] == [
        "linux/386",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
    ]
    assert node["engine_version"] == "" and node["image_store"] == ""
    assert buildkit.commands == [
        "docker buildx rm --force -- crossport-node-bk",
        "docker buildx create --name=crossport-node-bk --driver=remote -- tcp://127.0.0.1:1234",
        "docker buildx inspect --bootstrap -- crossport-node-bk",
    ]


def test_off_loopback_it_needs_mutual_tls_whose_files_stay_private_until_removed(
    staff: Any, buildkit: Any
) -> None:
    body = {"name": "bk", "kind": "buildkit", "endpoint": "tcp://bk.example:1234"}
    refused = staff.post("/api/v1/nodes", body)
    assert refused.status_code == 400 and "mutual TLS" in refused.content.decode()
    assert not BuilderNode.objects.filter(name="bk").exists() and buildkit.commands == []

    ca = make_ca()
    tls = client_tls(ca, issue(ca, "portal"))
    answer = staff.post("/api/v1/nodes", body | {"tls": tls})
    assert answer.status_code == 201, answer.content
    node = BuilderNode.objects.get(name="bk")
    folder = buildkitnodes.tls_dir(node)
    create = buildkit.commands[1]
    assert create == (
        "docker buildx create --name=crossport-node-bk --driver=remote "
        f"--driver-opt=cacert={folder / 'ca.pem'},cert={folder / 'cert.pem'},"
        f"key={folder / 'key.pem'} -- tcp://bk.example:1234"
    )
    assert (folder / "key.pem").read_text() == tls["key"]
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert tls["key"] not in answer.content.decode()

    assert staff.client.delete(f"/api/v1/nodes/{node.pk}", headers=staff.headers).status_code == 204
    assert buildkit.commands[-1] == "docker buildx rm --force -- crossport-node-bk"
    assert not folder.exists()


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [
        ("ssh://builder@bk.example", "tcp://host:port (mutual TLS off loopback) or unix://"),
        ("tcp://10.0.0.5:1234", "mutual TLS"),
        ("tcp://127.0.0.1:1234 --debug", "without spaces"),
        ("http://127.0.0.1:1234", "scheme"),
    ],
)
def test_endpoints_a_buildkitd_cannot_have_are_refused_and_nothing_runs(
    staff: Any, buildkit: Any, endpoint: str, says: str
) -> None:
    answer = staff.post("/api/v1/nodes", {"name": "bk", "kind": "buildkit", "endpoint": endpoint})
    assert answer.status_code == 400 and says in answer.content.decode(), answer.content
    assert buildkit.commands == [] and not BuilderNode.objects.filter(name="bk").exists()


def test_emulators_are_the_hosts_business_not_the_portals(staff: Any, buildkit: Any) -> None:
    staff.post(
        "/api/v1/nodes", {"name": "bk", "kind": "buildkit", "endpoint": "tcp://127.0.0.1:1234"}
    )
    node = BuilderNode.objects.get(name="bk")
    answer = staff.post(f"/api/v1/nodes/{node.pk}/emulators", {"platforms": ["linux/riscv64"]})
    assert answer.status_code == 400 and "install emulators on its host" in answer.json()["error"]
    assert not any("binfmt" in c for c in buildkit.commands)


def test_a_build_on_a_buildkit_node_goes_through_its_builder_not_docker_host(
    project: Any, alice: Any, buildkit: Any, local_node: BuilderNode, client: Any
) -> None:
    BuilderNode.objects.filter(pk=local_node.pk).update(enabled=False)
    node = BuilderNode.objects.create(
        name="bk",
        kind=BuilderNode.Kind.BUILDKIT,
        endpoint="tcp://127.0.0.1:1234",
        reachable=True,
        native_platforms=["linux/amd64"],
        emulated_platforms=["linux/arm64", "linux/arm/v7"],
        last_checked_at=local_node.last_checked_at,
    )
    build = queue_build(project, alice)
    backend = FakeBackend()
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    [spec] = backend.specs
    assert "--builder=crossport-node-bk" in spec.argv()
    assert "DOCKER_HOST" not in spec.env() and spec.cert_path is None
    assert spec.provenance == "mode=max"  # BuildKit pushes itself: an index, with attestations
    assert {r.node_id for r in build.platform_states.all()} == {node.pk}
    # "The same by hand" on the build page: a remote builder named as the node, no context.
    client.force_login(alice)
    page = client.get(f"/builds/{build.pk}/").content.decode()
    assert (
        "docker buildx build --builder=bk --platform=linux/amd64,linux/arm64,linux/arm/v7" in page
    )
    assert "--context=bk" not in page
