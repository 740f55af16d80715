"""Choosing nodes for a build: the nodes' facts as the planner sees them (node pools included),
and the plan with expected times from the project's history."""

from __future__ import annotations

from dataclasses import replace

from builds.models import Build, BuilderNode, BuildPlatform, BuildxBuilder
from builds.nodes import ensure_local_node
from builds.planner import NodeInfo, Plan, PlanError, builder_name, estimate, make_plan


def node_facts(node: BuilderNode) -> NodeInfo:
    return NodeInfo(
        pk=node.pk,
        name=node.name,
        native=tuple(node.native_platforms),
        emulated=tuple(node.emulated_platforms),
        running=node.running_builds(),
        max_builds=node.max_builds,
        reserved_for=frozenset(team.pk for team in node.reserved_for.all()),
    )


def candidate_nodes(build: Build) -> list[NodeInfo]:
    """Healthy, enabled nodes this build may use (the project's pinned node only, if set)."""
    ensure_local_node()
    nodes = BuilderNode.objects.filter(enabled=True, reachable=True).prefetch_related(
        "reserved_for"
    )
    if build.project.builder_node_id is not None:
        nodes = nodes.filter(pk=build.project.builder_node_id)
    return [node_facts(n) for n in nodes]


def builder_members(name: str) -> list[NodeInfo]:
    """A named builder's nodes in buildx's order, each with the platforms it serves there.
    buildx would send work to a drained or unreachable member too and fail midway: such a
    build fails (drained: an admin's choice) or waits (down: it may come back) before it starts,
    naming the node."""
    builder = BuildxBuilder.objects.filter(name=name).first()
    if builder is None:
        raise PlanError(f"no buildx builder named {name}")
    members = builder.members()
    if drained := [m.node.name for m in members if not m.node.enabled]:
        raise PlanError(
            f"builder {name}: node {', '.join(drained)} is drained; "
            "enable it again or take it out of the builder (leave)"
        )
    if down := [m.node for m in members if not m.node.reachable]:
        why = "; ".join(f"{n.name}: {n.last_error or 'unreachable'}" for n in down)
        raise PlanError(f"builder {name}: waiting for node {why}", busy=True)
    return [replace(node_facts(m.node), serves=tuple(m.platforms)) for m in members]


def plan_build(build: Build, dockerfile: str) -> Plan:
    """The plan for a build with the nodes as they are now, with expected times from history."""
    name = builder_name(build.strategy)
    nodes = candidate_nodes(build) if name is None else builder_members(name)
    try:
        team = build.project.team_id
        plan = make_plan(build.strategy, list(build.platforms), nodes, dockerfile, team)
    except PlanError as exc:
        # A node of this team's that is down now may be back in a minute: wait for it.
        down = BuilderNode.objects.filter(enabled=True, reachable=False)
        if name is None and not exc.busy and any(node_facts(n).open_to(team) for n in down):
            raise PlanError(f"{exc} (waiting for unhealthy nodes to recover)", busy=True) from exc
        raise
    history: dict[tuple[str, str], list[float]] = {}
    past = (
        BuildPlatform.objects.filter(
            build__project_id=build.project_id,
            state=BuildPlatform.State.DONE,
            started_at__isnull=False,
            finished_at__isnull=False,
        )
        .exclude(build_id=build.pk)
        .order_by("-finished_at")[:50]
    )
    for row in past:
        seconds = row.seconds
        key = (row.platform, row.method)
        if seconds is not None and len(history.setdefault(key, [])) < 5:
            history[key].append(seconds)
    estimate(plan, history)
    return plan
