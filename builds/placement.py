"""Choosing nodes for a build: the nodes' facts as the planner sees them (node pools included),
and the plan with expected times from the project's history."""

from __future__ import annotations

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


def plan_build(build: Build, dockerfile: str) -> Plan:
    """The plan for a build with the nodes as they are now, with expected times from history."""
    nodes = candidate_nodes(build)
    if (name := builder_name(build.strategy)) is not None:
        builder = BuildxBuilder.objects.filter(name=name).first()
        if builder is None:
            raise PlanError(f"no buildx builder named {name}")
        members = set(builder.nodes.values_list("pk", flat=True))
        nodes = [n for n in nodes if n.pk in members]
        if len(nodes) < len(members):  # buildx would send work to the unhealthy one too
            raise PlanError(f"builder {name} has unhealthy or drained nodes", busy=True)
    try:
        team = build.project.team_id
        plan = make_plan(build.strategy, list(build.platforms), nodes, dockerfile, team)
    except PlanError as exc:
        # A node of this team's that is down now may be back in a minute: wait for it.
        down = BuilderNode.objects.filter(enabled=True, reachable=False)
        if not exc.busy and any(node_facts(n).open_to(team) for n in down):
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
