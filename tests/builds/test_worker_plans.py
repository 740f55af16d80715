"""The worker carries out plans: several runs at once, merged; failures named per platform."""

from __future__ import annotations

from typing import Any

from builds.models import Build, BuilderNode, BuildPlatform, LogLine, ManifestRecord
from builds.planner import staging_tag
from builds.services import queue_build
from builds.worker import claim_next, work_once
from fakes import INDEX_DIGEST, FakeBackend, run_digest, second_node


def test_a_native_build_runs_each_platform_apart_and_merges(project: Any, alice: Any) -> None:
    second_node(image_store="containerd")
    build = queue_build(project, alice, strategy="native")
    assert build.plan["preview"] and len(build.plan["steps"]) == 3
    backend = FakeBackend()
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    assert [s.platforms for s in backend.specs] == [[p] for p in project.platforms]
    assert [s.tags for s in backend.specs] == [
        [f"{project.image}:{staging_tag(build.pk, [p])}"] for p in project.platforms
    ]
    hosts = {s.docker_host for s in backend.specs}
    assert hosts == {"unix:///var/run/docker.sock", "tcp://127.0.0.1:9"}
    # BuildKit pushes by itself where the engine keeps images in containerd, so buildx must
    # not push again; an engine with a classic storage driver pushes through buildx.
    pushes = {s.docker_host: [a for a in s.argv() if "push" in a] for s in backend.specs}
    assert pushes == {
        "tcp://127.0.0.1:9": ["--output=type=image,push="],
        "unix:///var/run/docker.sock": ["--push"],
    }
    assert backend.merged == [(f"{project.image}:latest", [run_digest(i) for i in range(3)])]
    assert build.digest == INDEX_DIGEST and "preview" not in build.plan
    rows = {r.platform: r for r in build.platform_states.select_related("node")}
    assert {r.node.name for r in rows.values()} == {"local", "second"}  # type: ignore[union-attr]
    assert rows["linux/amd64"].method == "native" and rows["linux/arm64"].method == "emulated"
    assert all(r.seconds is not None and r.state == "done" for r in rows.values())
    record = ManifestRecord.objects.get(build=build)
    assert record.builder_node == "local, second"
    api = build.to_api()
    assert api["strategy"] == "native" and api["plan"]["steps"][0]["node"] == "local"
    assert set(api["platforms"]["linux/arm64"]) >= {"state", "node", "seconds", "digest"}


def test_a_failed_run_fails_its_platform_with_the_reason(project: Any, alice: Any) -> None:
    second_node()

    class SecondNodeDies(FakeBackend):
        def build(
            self, specs: Any, on_output: Any, should_stop: Any, grace: float, *extra: Any
        ) -> list[int]:
            codes = super().build(specs, on_output, should_stop, grace, *extra)
            dead = [i for i, s in enumerate(specs) if s.docker_host.endswith(":9")]
            for i in dead:
                on_output(i, b"ERROR: failed to solve: connection reset by peer\n")
                codes[i] = 1
            return codes

    build = queue_build(project, alice, strategy="native")
    backend = SecondNodeDies()
    backend.dead_endpoints = {"tcp://127.0.0.1:9"}
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.FAILED and build.fault == Build.Fault.SYSTEM
    assert "on node second: failed to solve: connection reset by peer" in build.reason
    assert build.reason.endswith("(node second is lost)")
    failed = build.platform_states.get(node__name="second")
    assert failed.state == BuildPlatform.State.FAILED
    assert "connection reset by peer" in failed.reason
    assert not ManifestRecord.objects.filter(build=build).exists()
    # The node was checked at once: its endpoint does not answer, so it is unhealthy now.
    node = BuilderNode.objects.get(name="second")
    assert node.reachable is False and node.last_error
    assert LogLine.objects.filter(build=build, text__contains="unreachable now").exists()
    nxt = queue_build(project, alice, strategy="native")
    work_once("w1", FakeBackend())
    nxt.refresh_from_db()
    assert nxt.state == Build.State.SUCCEEDED
    assert set(nxt.platform_states.values_list("node__name", flat=True)) == {"local"}


def test_unplannable_builds_fail_and_full_nodes_keep_them_queued(project: Any, alice: Any) -> None:
    project.platforms = ["linux/s390x"]
    project.save()
    build = queue_build(project, alice)
    assert "install its emulator" in build.plan["error"]
    assert claim_next("w1") is None
    build.refresh_from_db()
    assert build.state == Build.State.FAILED and "no build plan" in build.reason
    project.platforms = ["linux/amd64"]
    project.save()
    BuilderNode.objects.filter(name="local").update(max_builds=1)
    running = queue_build(project, alice)
    assert claim_next("w1") is not None
    from portal.models import Project

    other = Project.objects.create(
        team=project.team,
        name="other",
        git_url=project.git_url,
        image=project.image + "2",
        platforms=["linux/amd64"],
        language="go",
    )
    waiting = queue_build(other, alice)
    assert claim_next("w2") is None, "the only node is at its limit"
    waiting.refresh_from_db()
    assert waiting.state == Build.State.QUEUED
    Build.objects.filter(pk=running.pk).update(state=Build.State.SUCCEEDED)
    assert claim_next("w2") == waiting


def test_teams_with_fewer_running_builds_go_first(project: Any, alice: Any, beta: Any) -> None:
    from portal.models import Project

    BuilderNode.objects.filter(name="local").update(max_builds=10)

    def make(team: Any, name: str) -> Project:
        return Project.objects.create(
            team=team,
            name=name,
            git_url=project.git_url,
            image=f"localhost:5000/{team.slug}/{name}",
            platforms=["linux/amd64"],
            language="go",
        )

    a1, a2 = make(project.team, "a1"), make(project.team, "a2")
    b1 = make(beta, "b1")
    queue_build(a1, alice)
    queue_build(a2, alice)
    queue_build(b1, alice)
    first, second = claim_next("w"), claim_next("w")
    assert first is not None and second is not None
    assert first.project == a1 and second.project == b1, "beta is not starved behind alpha"


def test_a_named_builder_gets_one_run_through_it(
    project: Any, alice: Any, settings: Any, tmp_path: Any
) -> None:
    import pytest

    from builds.models import BuildxBuilder
    from portal.grammar import InvalidValue

    settings.DATA_DIR = tmp_path
    with pytest.raises(InvalidValue, match="no buildx builder named fleet"):
        queue_build(project, alice, strategy="builder:fleet")
    with pytest.raises(InvalidValue, match="or builder:<name>"):
        queue_build(project, alice, strategy="builder:-x")
    assert not Build.objects.exists()
    BuilderNode.objects.update(image_store="containerd")  # not what a named builder uses
    BuildxBuilder.objects.create(name="fleet").nodes.set(BuilderNode.objects.all())
    build = queue_build(project, alice, strategy="builder:fleet")
    backend = FakeBackend()
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    [spec] = backend.specs
    assert "--builder=fleet" in spec.argv() and spec.docker_host == ""
    assert "--push" in spec.argv() and "--output=type=image,push=" not in spec.argv()
    assert spec.env()["DOCKER_CONFIG"] == str(tmp_path / "docker")
    assert {s["method"] for s in build.plan["steps"]} == {"builder"}
