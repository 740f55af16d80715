"""The build planner: which node builds which platform, by which method."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from builds.planner import NodeInfo, Plan, PlanError, Step, cross_compiles, estimate, make_plan
from portal.grammar import InvalidValue

AMD = NodeInfo(1, "amd", native=("linux/amd64",), emulated=("linux/arm64", "linux/arm/v7"))
AMD2 = NodeInfo(2, "amd2", native=("linux/amd64",), emulated=("linux/arm64", "linux/arm/v7"))
ARM = NodeInfo(3, "arm", native=("linux/arm64", "linux/arm/v7"), emulated=())
THREE = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
CROSS = "FROM --platform=$BUILDPLATFORM golang:1.19 AS build\nRUN go build\nFROM alpine\n"
NAIVE = "FROM golang:1.19\nRUN go build\n"


def layout(plan: Plan) -> list[tuple[str, str, str, int]]:
    return [(s.platform, s.node, s.method, s.run) for s in plan.steps]


def test_emulate_puts_everything_in_one_run_on_one_node() -> None:
    plan = make_plan("emulate", THREE, [AMD, ARM], NAIVE)
    assert layout(plan) == [
        ("linux/amd64", "amd", "native", 0),
        ("linux/arm64", "amd", "emulated", 0),
        ("linux/arm/v7", "amd", "emulated", 0),
    ]
    assert len(plan.runs) == 1


def test_emulate_prefers_the_idle_node_and_names_what_is_missing() -> None:
    busy = NodeInfo(1, "amd", AMD.native, AMD.emulated, running=1)
    assert make_plan("emulate", THREE, [busy, AMD2]).steps[0].node == "amd2"
    with pytest.raises(PlanError, match="no single node can build all"):
        make_plan("emulate", THREE, [ARM, NodeInfo(4, "x86", ("linux/amd64",), ())])


def test_native_gives_each_platform_its_own_run_on_a_native_node() -> None:
    plan = make_plan("native", THREE, [AMD, ARM], NAIVE)
    assert layout(plan) == [
        ("linux/amd64", "amd", "native", 0),
        ("linux/arm64", "arm", "native", 1),
        ("linux/arm/v7", "arm", "native", 2),
    ]


def test_native_spreads_emulated_platforms_over_equal_nodes() -> None:
    plan = make_plan("native", THREE, [AMD, AMD2], NAIVE)
    nodes = [s.node for s in plan.steps]
    assert set(nodes) == {"amd", "amd2"}, "both nodes work in parallel"
    assert [s.method for s in plan.steps] == ["native", "emulated", "emulated"]
    assert len(plan.runs) == 3


def test_auto_uses_cross_compiling_stages_and_groups_runs_per_node() -> None:
    plan = make_plan("auto", THREE, [AMD, AMD2], CROSS)
    assert [s.method for s in plan.steps] == ["native", "cross", "cross"]
    assert len(plan.runs) == 2 and {s.node for s in plan.steps} == {"amd", "amd2"}
    naive = make_plan("auto", THREE, [AMD], NAIVE)
    assert [s.method for s in naive.steps] == ["native", "emulated", "emulated"]
    assert len(naive.runs) == 1
    with_arm = make_plan("auto", THREE, [AMD, ARM], CROSS)
    assert [(s.node, s.method) for s in with_arm.steps] == [
        ("amd", "native"),
        ("arm", "native"),
        ("arm", "native"),
    ]


def test_full_and_unable_nodes() -> None:
    full = NodeInfo(1, "amd", AMD.native, AMD.emulated, running=2, max_builds=2)
    with pytest.raises(PlanError) as caught:
        make_plan("auto", THREE, [full])
    assert caught.value.busy and "build limit" in str(caught.value)
    with pytest.raises(PlanError) as caught:
        make_plan("native", ["linux/s390x"], [AMD])
    assert not caught.value.busy and "install its emulator" in str(caught.value)
    with pytest.raises(PlanError, match="no healthy, enabled builder node"):
        make_plan("auto", THREE, [])


def test_expected_time_is_the_slowest_run_of_past_medians() -> None:
    plan = make_plan("native", THREE, [AMD, ARM])
    estimate(plan, {("linux/amd64", "native"): [10.0, 12.0, 30.0]})
    assert plan.expected_seconds is None, "unknown while a platform has no history"
    estimate(
        plan,
        {
            ("linux/amd64", "native"): [10.0, 12.0, 30.0],
            ("linux/arm64", "native"): [20.0],
            ("linux/arm/v7", "native"): [5.0, 7.0],
        },
    )
    assert [s.expected_seconds for s in plan.steps] == [12.0, 20.0, 6.0]
    assert plan.expected_seconds == 20.0
    assert Plan.from_json(plan.to_json()).steps == plan.steps


def test_cross_compile_detection() -> None:
    assert cross_compiles(CROSS)
    assert cross_compiles("FROM --platform=${BUILDPLATFORM} node:18 AS web\n")
    assert not cross_compiles(NAIVE)
    assert not cross_compiles("FROM --platform=linux/amd64 golang\n")


def test_strategy_grammar() -> None:
    from builds.planner import validate_strategy

    assert validate_strategy(None) == "auto"
    assert validate_strategy("native") == "native"
    with pytest.raises(InvalidValue, match="expected one of auto, emulate, native"):
        validate_strategy("--fast")


def test_a_named_builder_places_each_platform_on_the_node_that_serves_it() -> None:
    amd = replace(AMD, serves=("linux/amd64",))
    arm = replace(AMD2, serves=("linux/arm64", "linux/arm/v7"))
    plan = make_plan("builder:fleet", THREE, [amd, arm])
    assert [(s.platform, s.node) for s in plan.steps] == [
        ("linux/amd64", "amd"),
        ("linux/arm64", "amd2"),
        ("linux/arm/v7", "amd2"),
    ]
    assert len(plan.runs) == 1 and {s.method for s in plan.steps} == {"builder"}
    # A node made without --platform takes what no other serves, as buildx does.
    assert make_plan("builder:fleet", THREE, [AMD, arm]).node_ids() == {1, 2}
    assert make_plan("builder:fleet", THREE, [AMD, AMD2]).node_ids() == {1}
    with pytest.raises(PlanError, match="no node for linux/arm64 .nodes: amd: linux/amd64."):
        make_plan("builder:fleet", THREE, [amd])
    with pytest.raises(PlanError, match="builder fleet has no nodes"):
        make_plan("builder:fleet", THREE, [])


def test_a_named_builder_needs_room_on_every_member() -> None:
    full = NodeInfo(2, "amd2", AMD2.native, AMD2.emulated, running=2, max_builds=2)
    with pytest.raises(PlanError) as caught:
        make_plan("builder:fleet", THREE, [AMD, full])
    assert caught.value.busy


def test_one_registry_entry_feeds_the_planner_the_form_and_the_api(
    monkeypatch: pytest.MonkeyPatch, project: Any, alice: Any, api: Any
) -> None:
    from django.test import Client

    from builds import planner
    from builds.models import Build, BuildxBuilder

    def plan_first_node(plan, platforms, nodes, room, dockerfile):  # type: ignore[no-untyped-def]
        node = min(room, key=lambda n: n.name)
        plan.steps = [Step(p, node.name, node.pk, "emulated", 0) for p in platforms]

    solo = planner.Strategy("solo", "the first node by name builds everything", plan_first_node)
    monkeypatch.setitem(planner.STRATEGIES, "solo", solo)
    BuildxBuilder.objects.create(name="fleet")
    assert planner.validate_strategy("solo") == "solo"
    nodes = [NodeInfo(2, "b", ("linux/amd64",), ()), NodeInfo(1, "a", (), ("linux/amd64",))]
    assert [s.node for s in make_plan("solo", ["linux/amd64"], nodes).steps] == ["a"]

    client = Client()
    client.force_login(alice)
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert '<option value="solo">solo: the first node by name builds everything</option>' in page
    assert '<option value="builder:fleet">builder fleet (no nodes)</option>' in page
    assert '<option value="auto" selected>' in page
    client.post(f"/projects/{project.pk}/builds", {"strategy": "solo"})
    assert Build.objects.get().strategy == "solo"

    schema = api(alice).get("/api/v1/openapi.json").json()["components"]["schemas"]["BuildIn"]
    strategy = schema["properties"]["strategy"]
    assert (
        "solo" in strategy["anyOf"][0]["enum"] and "solo: the first node" in strategy["description"]
    )


def test_an_unknown_stored_strategy_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="unknown strategy 'fastest'"):
        make_plan("fastest", ["linux/amd64"], [NodeInfo(1, "a", ("linux/amd64",), ())])


# node pools ---------------------------------------------------------------------------------
WEB, DATA = 10, 20  # team ids
ARM_FOR_DATA = NodeInfo(
    3, "arm", ARM.native, ARM.emulated, reserved_for=frozenset({DATA})
)  # the only native arm node, reserved for one team
AMD_FOR_DATA = NodeInfo(1, "amd", AMD.native, AMD.emulated, reserved_for=frozenset({DATA}))


def test_a_reserved_node_serves_its_own_team_and_shared_nodes_serve_everyone() -> None:
    plan = make_plan("native", THREE, [AMD2, ARM_FOR_DATA], NAIVE, team=DATA)
    assert {s.node for s in plan.steps} == {"amd2", "arm"}
    assert ARM_FOR_DATA.open_to(DATA) and not ARM_FOR_DATA.open_to(WEB)
    assert AMD2.open_to(WEB) and AMD2.open_to(None), "no reservation: shared"


@pytest.mark.parametrize("strategy", ["auto", "native", "emulate"])
def test_another_teams_build_never_lands_on_a_reserved_node(strategy: str) -> None:
    plan = make_plan(strategy, THREE, [AMD2, ARM_FOR_DATA], NAIVE, team=WEB)
    assert {s.node for s in plan.steps} == {"amd2"}, "emulated on the shared node instead"
    assert make_plan(strategy, THREE, [AMD_FOR_DATA, AMD2], NAIVE, team=WEB).node_ids() == {2}


def test_platforms_only_reserved_nodes_serve_fail_with_a_reason_naming_no_team() -> None:
    x86 = NodeInfo(4, "x86", ("linux/amd64",), ())
    with pytest.raises(PlanError) as caught:
        make_plan("auto", THREE, [x86, ARM_FOR_DATA], team=WEB)
    message = str(caught.value)
    assert not caught.value.busy
    assert message == (
        "no node open to this team can build linux/arm64, linux/arm/v7: "
        "the nodes that serve them are reserved for other teams"
    )
    assert "20" not in message and "arm" not in message.replace("linux/arm", "")
    with pytest.raises(PlanError, match="reserved for other teams"):
        make_plan("native", ["linux/amd64"], [AMD_FOR_DATA], team=WEB)
    with pytest.raises(PlanError, match="reserved for other teams"):
        make_plan("emulate", ["linux/amd64"], [AMD_FOR_DATA], team=None)


def test_a_busy_reserved_node_does_not_make_another_team_wait() -> None:
    full_shared = NodeInfo(2, "amd2", AMD2.native, AMD2.emulated, running=2, max_builds=2)
    with pytest.raises(PlanError) as caught:
        make_plan("auto", ["linux/amd64"], [full_shared, AMD_FOR_DATA], team=WEB)
    assert caught.value.busy, "the shared node will have room again"
    assert "reserved" not in str(caught.value)


def test_a_named_builder_with_another_teams_node_is_refused() -> None:
    with pytest.raises(PlanError) as caught:
        make_plan("builder:fleet", THREE, [AMD_FOR_DATA, AMD2], team=WEB)
    assert not caught.value.busy
    assert str(caught.value) == "builder fleet has nodes reserved for other teams"
    assert make_plan("builder:fleet", THREE, [AMD_FOR_DATA, AMD2], team=DATA).node_ids() == {1}
