"""The registry layer cache: each run of a build reads and writes its platforms' own cache
reference below the project's image, a project can turn it off, and a build counts per
platform how many of its steps came from cache."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from builds.models import Build
from builds.planner import Plan, cache_tag, equivalent_cli
from builds.services import queue_build
from builds.worker import work_once
from fakes import PLATFORM_DIGESTS, FakeBackend, second_node

T0, T1 = "2024-05-01T10:00:00.000000001Z", "2024-05-01T10:00:01.250000001Z"


def cache_flags(backend: FakeBackend) -> dict[tuple[str, ...], list[str]]:
    return {
        tuple(spec.platforms): [a for a in spec.argv() if a.startswith("--cache")]
        for spec in backend.specs
    }


def test_each_run_reads_and_writes_the_cache_of_its_own_platforms(project: Any, alice: Any) -> None:
    second_node()
    build = queue_build(project, alice, strategy="native")
    backend = FakeBackend()
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    flags = cache_flags(backend)
    assert len(flags) >= 2  # several runs (nodes)
    refs = set()
    for platforms, given in flags.items():
        ref = f"ref=localhost:5000/alpha/hello:{cache_tag(list(platforms))}"
        assert given == [
            f"--cache-from=type=registry,{ref}",
            f"--cache-to=type=registry,{ref},mode=max,image-manifest=true,"
            "oci-mediatypes=true,ignore-error=true",
        ]
        refs.add(ref)
    assert len(refs) == len(flags)  # no run overwrites another's cache


def test_the_cache_tag_names_the_platforms_whatever_their_order() -> None:
    assert cache_tag(["linux/arm64", "linux/amd64"]) == "crossport-cache-linux-amd64_linux-arm64"
    assert cache_tag(["linux/arm/v7"]) == "crossport-cache-linux-arm-v7"
    assert len(cache_tag([f"linux/arch{n}" for n in range(40)])) == 128  # a tag's limit


def test_a_project_without_the_cache_reads_and_writes_none(project: Any, alice: Any) -> None:
    project.registry_cache = False
    project.save()
    queue_build(project, alice)
    backend = FakeBackend()
    work_once("w1", backend)
    assert backend.specs and all(flags == [] for flags in cache_flags(backend).values())


def test_the_equivalent_commands_carry_the_cache_flags(project: Any, alice: Any) -> None:
    build = queue_build(project, alice)
    work_once("w1", FakeBackend())
    build.refresh_from_db()
    client = Client()
    client.force_login(alice)
    page = client.get(f"/builds/{build.pk}/").content.decode()
    assert f"--cache-from=type=registry,ref={project.image}:crossport-cache-" in page
    plan = Plan.from_json(build.plan)
    commands = "\n".join(equivalent_cli(plan, project.image, build.tags, build.pk))
    assert "docker" in commands and "--cache-" not in commands


def _vertex(n: int, name: str, **fields: Any) -> dict[str, Any]:
    return {"digest": f"sha256:{n:064x}", "name": name, **fields}


def test_steps_from_cache_are_counted_per_platform(project: Any, alice: Any, api: Any) -> None:
    amd, arm = "linux/amd64", "linux/arm64"
    vertexes = [
        _vertex(1, "[internal] load metadata for x", cached=True),  # BuildKit's own: no step
        _vertex(2, f"[{amd} build 1/3] FROM x", cached=True),
        _vertex(3, f"[{amd} build 2/3] COPY go.mod .", cached=True),
        _vertex(8, f"[{amd} build 2/3] COPY . .", cached=True),
        _vertex(4, f"[{amd} build 3/3] RUN go build", started=T0, completed=T1),
        _vertex(5, f"[{arm} build 1/3] FROM x", cached=True),
        _vertex(6, f"[{arm} build 2/3] COPY go.mod .", started=T0, completed=T1),
        _vertex(7, f"[{arm} build 3/3] RUN go build", started=T0, completed=T1),
    ]
    stream = json.dumps({"vertexes": vertexes}).encode() + b"\n"
    project.platforms = [amd, arm]
    project.save()
    build = queue_build(project, alice)
    two = {p: d for p, d in PLATFORM_DIGESTS.items() if p in (amd, arm)}
    work_once("w1", FakeBackend(stream=stream, platforms=two))
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    counts = {
        p.platform: (p.steps_cached, p.steps_run) for p in build.platform_states.order_by("pk")
    }
    assert counts == {amd: (2, 1), arm: (0, 2)}  # FROM (a pull) is no build step
    client = Client()
    client.force_login(alice)
    answer = api(alice).get(f"/api/v1/builds/{build.pk}").json()
    shown = {p: (v["steps_cached"], v["steps_run"]) for p, v in answer["platforms"].items()}
    assert shown == counts
    page = client.get(f"/builds/{build.pk}/").content.decode()
    assert "2 of 3 steps from cache" in page and "0 of 2 steps from cache" in page
