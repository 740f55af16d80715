"""Multi-node builders without an engine: the BuildKit configuration Crossport writes, the
commands it runs (through the one seam, builders.docker_cli), all-or-nothing changes, and placement
of each platform on the node that serves it."""

from __future__ import annotations

import io
import re
import stat
import tomllib
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from builds import builders, buildkitconfig
from builds.models import Build, BuilderNode, BuildxBuilder, ManifestRecord
from builds.nodes import CommandResult
from builds.services import queue_build
from builds.worker import work_once
from fakes import Engines, FakeBackend, second_node
from portal.grammar import InvalidValue


@pytest.fixture(autouse=True)
def _own_data_dir(settings: Any, tmp_path: Any) -> None:
    settings.DATA_DIR = tmp_path


@pytest.fixture
def registries(settings: Any) -> Any:
    settings.PORTAL_BASE_IMAGE_MIRROR = "localhost:5000/library"
    settings.PORTAL_OUTBOUND_ALLOW = ["localhost:5000", "registry.example.com", "10.0.0.0/8"]
    settings.PORTAL_BUILDKIT_HTTP_REGISTRIES = ["Registry.LAN:5000"]
    settings.PORTAL_BUILDKIT_REGISTRY_CA = {"crossport-registry.test:5443": "/etc/crossport/ca.pem"}
    return settings


def test_the_buildkitd_toml_reaches_every_registry_the_operator_named(
    registries: Any, tmp_path: Any
) -> None:
    path = buildkitconfig.write("fleet")
    assert path == tmp_path / "buildkit" / "fleet.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    parsed = tomllib.loads(path.read_text())["registry"]
    assert parsed == {
        "docker.io": {"mirrors": ["localhost:5000"]},
        "registry.lan:5000": {"http": True},
        "localhost:5000": {"http": True},  # loopback: counted without being listed
        "crossport-registry.test:5443": {"ca": ["/etc/crossport/ca.pem"]},
    }


def test_without_settings_the_config_says_nothing_and_the_image_is_docker_hubs(
    settings: Any,
) -> None:
    settings.PORTAL_BASE_IMAGE_MIRROR = ""
    settings.PORTAL_OUTBOUND_ALLOW = []
    assert tomllib.loads(buildkitconfig.render()) == {}
    assert buildkitconfig.image() == "moby/buildkit:buildx-stable-1"
    assert not buildkitconfig.needs_host_network(engine_has_bridge=True)
    assert buildkitconfig.needs_host_network(engine_has_bridge=False)


def test_the_image_comes_through_the_mirror_unless_it_names_a_registry(registries: Any) -> None:
    assert buildkitconfig.image() == "localhost:5000/moby/buildkit:buildx-stable-1"
    registries.PORTAL_BUILDKIT_IMAGE = "localhost:5000/library/buildkit:v0.13.2"
    assert buildkitconfig.image() == "localhost:5000/library/buildkit:v0.13.2"
    registries.PORTAL_BUILDKIT_IMAGE = "evil,network=none"
    with pytest.raises(ImproperlyConfigured, match="not an image name"):
        buildkitconfig.image()


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("PORTAL_BUILDKIT_HTTP_REGISTRIES", ['x"]\nhttp = false #']),
        ("PORTAL_BUILDKIT_REGISTRY_CA", {"host:1": "relative/ca.pem"}),
        ("PORTAL_BUILDKIT_REGISTRY_CA", {"bad host": "/ca.pem"}),
    ],
)
def test_a_setting_that_is_no_registry_is_a_configuration_error(
    settings: Any, setting: str, value: Any
) -> None:
    setattr(settings, setting, value)
    with pytest.raises(ImproperlyConfigured, match=setting):
        buildkitconfig.render()


def test_create_runs_the_articles_commands_with_a_platform_per_node(
    registries: Any, engines: Engines, local_node: BuilderNode, tmp_path: Any
) -> None:
    arm = second_node(name="arm")
    engines.bridged.add("crossport-arm")
    outcome = builders.create("fleet", [(local_node, ["amd64"]), (arm, ["linux/arm64"])])
    assert outcome.ok, outcome
    config = tmp_path / "buildkit" / "fleet.toml"
    common = (
        "--driver=docker-container "
        "--driver-opt=image=localhost:5000/moby/buildkit:buildx-stable-1 "
        # the bridged engine too: localhost:5000 is only reachable on the host's network
        "--driver-opt=network=host "
        f"--buildkitd-config={config}"
    )
    assert engines.buildx() == [
        f"docker buildx create --name=fleet {common} --platform=linux/amd64 "
        "--node=fleet-local -- crossport-local",
        f"docker buildx create --name=fleet {common} --platform=linux/arm64 "
        "--node=fleet-arm --append -- crossport-arm",
    ]
    builder = BuildxBuilder.objects.get(name="fleet")
    assert builder.to_api()["nodes"] == [
        {"node": local_node.pk, "name": "local", "platforms": ["linux/amd64"]},
        {"node": arm.pk, "name": "arm", "platforms": ["linux/arm64"]},
    ]
    assert [r["command"] for r in outcome.to_api()] == [r.command for r in outcome.results]


def test_host_network_only_where_the_engine_has_no_bridge(
    settings: Any, engines: Engines, local_node: BuilderNode
) -> None:
    settings.PORTAL_BASE_IMAGE_MIRROR = ""
    settings.PORTAL_OUTBOUND_ALLOW = ["registry.example.com:443"]
    arm = second_node(name="arm")
    engines.bridged.add("crossport-local")
    assert builders.create("fleet", [(local_node, []), (arm, [])]).ok
    first, second = engines.buildx()
    assert "network=host" not in first and "--platform" not in first
    assert "--driver-opt=network=host" in second


def test_a_node_that_cannot_join_undoes_the_whole_builder(
    registries: Any, engines: Engines, local_node: BuilderNode, tmp_path: Any
) -> None:
    arm = second_node(name="arm")
    engines.failing["--context crossport-arm network ls"] = (
        "Cannot connect to the Docker daemon at tcp://127.0.0.1:9. Is the docker daemon running?"
    )
    outcome = builders.create("fleet", [(local_node, ["linux/amd64"]), (arm, ["linux/arm64"])])
    assert outcome.error == (
        "node arm could not join: Cannot connect to the Docker daemon at tcp://127.0.0.1:9. "
        "Is the docker daemon running?"
    )
    assert outcome.results[-3:] == [
        CommandResult("docker buildx rm -- fleet", 0, ""),
        CommandResult("docker context rm --force -- crossport-local", 0, ""),
        CommandResult("docker context rm --force -- crossport-arm", 0, ""),
    ]
    assert not BuildxBuilder.objects.exists()
    assert not (tmp_path / "buildkit" / "fleet.toml").exists()


def test_bad_members_are_refused_before_any_command(
    engines: Engines, local_node: BuilderNode
) -> None:
    with pytest.raises(InvalidValue, match="platform"):
        builders.create("fleet", [(local_node, ["linux/sparc"])])
    with pytest.raises(InvalidValue, match="once"):
        builders.create("fleet", [(local_node, []), (local_node, [])])
    with pytest.raises(InvalidValue, match="builder name"):
        builders.create("--fleet", [(local_node, [])])
    assert engines.commands == []


def test_append_leave_and_remove(
    registries: Any, engines: Engines, local_node: BuilderNode, tmp_path: Any
) -> None:
    builders.create("fleet", [(local_node, ["linux/amd64"])])
    builder = BuildxBuilder.objects.get()
    arm = second_node(name="arm")
    appended = builders.append(builder, arm, ["arm64"])
    assert appended.ok and "--platform=linux/arm64 --node=fleet-arm --append" in (
        appended.results[-1].command
    )
    assert builders.append(builder, arm, []).error == "node arm is already in builder fleet"
    engines.commands.clear()
    assert builders.leave(builder, arm).ok
    assert engines.commands == [
        "docker buildx create --leave --name=fleet --node=fleet-arm",
        # buildx's --leave keeps the node's BuildKit running: Crossport removes it
        "docker --context crossport-arm rm --force -- buildx_buildkit_fleet-arm",
        "docker --context crossport-arm volume rm --force -- buildx_buildkit_fleet-arm_state",
        "docker context rm --force -- crossport-arm",
    ]
    assert [m.node.name for m in builder.members()] == ["local"]
    engines.commands.clear()
    assert builders.remove(builder).ok
    assert engines.commands == [
        "docker buildx rm -- fleet",
        "docker context rm --force -- crossport-local",
    ]
    assert not BuildxBuilder.objects.exists()
    assert not (tmp_path / "buildkit" / "fleet.toml").exists()


def _fleet(local: BuilderNode, arm: BuilderNode) -> BuildxBuilder:
    builder = BuildxBuilder.objects.create(name="fleet")
    builder.memberships.create(node=local, platforms=["linux/amd64"], position=0)
    builder.memberships.create(node=arm, platforms=["linux/arm64", "linux/arm/v7"], position=1)
    return builder


def test_each_platform_is_recorded_on_the_node_that_serves_it(
    project: Any, alice: Any, local_node: BuilderNode
) -> None:
    arm = second_node(name="arm", native_platforms=["linux/arm64"])
    _fleet(local_node, arm)
    build = queue_build(project, alice, strategy="builder:fleet")
    backend = FakeBackend()
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    [spec] = backend.specs  # one buildx build through the builder, every platform in it
    assert "--builder=fleet" in spec.argv()
    assert "--platform=linux/amd64,linux/arm64,linux/arm/v7" in spec.argv()
    rows = {r.platform: r.node.name for r in build.platform_states.select_related("node")}  # type: ignore[union-attr]
    assert rows == {"linux/amd64": "local", "linux/arm64": "arm", "linux/arm/v7": "arm"}
    assert ManifestRecord.objects.get(build=build).builder_node == "arm, local"
    log = "\n".join(build.log_lines.values_list("text", flat=True))
    assert "on node local: linux/amd64 (builder)" in log
    assert "on node arm: linux/arm64 (builder), linux/arm/v7 (builder)" in log


def test_a_platform_no_member_serves_fails_before_starting(
    project: Any, alice: Any, local_node: BuilderNode
) -> None:
    builder = BuildxBuilder.objects.create(name="fleet")
    builder.memberships.create(node=local_node, platforms=["linux/amd64"])
    build = queue_build(project, alice, strategy="builder:fleet")
    work_once("w1", FakeBackend())
    build.refresh_from_db()
    assert build.state == Build.State.FAILED
    assert build.reason == (
        "no build plan: builder fleet has no node for linux/arm64 (nodes: local: linux/amd64)"
    )


def test_a_drained_member_fails_and_a_down_one_waits_naming_the_node(
    project: Any, alice: Any, local_node: BuilderNode
) -> None:
    arm = second_node(name="arm")
    _fleet(local_node, arm)
    BuilderNode.objects.filter(pk=arm.pk).update(reachable=False, last_error="connection refused")
    waiting = queue_build(project, alice, strategy="builder:fleet")
    backend = FakeBackend()
    work_once("w1", backend)
    waiting.refresh_from_db()
    assert waiting.state == Build.State.QUEUED and not backend.specs
    from builds.placement import plan_build
    from builds.planner import PlanError

    with pytest.raises(PlanError, match=re.escape("waiting for node arm: connection refused")):
        plan_build(waiting, "")
    BuilderNode.objects.filter(pk=arm.pk).update(reachable=True, enabled=False)
    work_once("w1", backend)
    waiting.refresh_from_db()
    assert waiting.state == Build.State.FAILED and not backend.specs
    assert waiting.reason == (
        "no build plan: builder fleet: node arm is drained; "
        "enable it again or take it out of the builder (leave)"
    )


# Kubernetes: the command lines (no cluster runs here) -----------------------------------------


def test_kubernetes_builder_is_one_native_node_per_architecture(settings: Any) -> None:
    from django.core.management import call_command

    settings.PORTAL_BUILDKIT_IMAGE = "localhost:5000/library/buildkit:v0.13.2"
    out = io.StringIO()
    call_command("kubernetes_builder", "kube", "linux/amd64", "arm64", "linux/arm/v7", stdout=out)
    config = buildkitconfig.config_path("kube")
    common = (
        "docker buildx create --name=kube --driver=kubernetes --driver-opt=namespace=crossport "
        "--driver-opt=replicas=1 --driver-opt=nodeselector=kubernetes.io/arch={arch} "
        "--driver-opt=image=localhost:5000/library/buildkit:v0.13.2 "
        f"--buildkitd-config={config} --platform={{platforms}} --node=kube-{{arch}}"
    )
    assert out.getvalue().splitlines() == [
        common.format(arch="amd64", platforms="linux/amd64"),
        common.format(arch="arm64", platforms="linux/arm64") + " --append",
        common.format(arch="arm", platforms="linux/arm/v7") + " --append",
        "docker buildx inspect --bootstrap -- kube",
    ]
    assert config.read_text() == buildkitconfig.render()


@pytest.mark.parametrize(
    ("name", "namespace", "says"),
    [
        ("Kube", "crossport", "builder name"),
        ("kube_1", "crossport", "builder name"),
        ("kube", "ns;rm", "namespace"),
        ("kube", "-ns", "namespace"),
        ("--x", "crossport", "builder name"),
    ],
)
def test_kubernetes_builder_refuses_names_kubernetes_would(
    name: str, namespace: str, says: str
) -> None:
    with pytest.raises(InvalidValue, match=says):
        builders.kubernetes_commands(name, ["linux/amd64"], namespace)
