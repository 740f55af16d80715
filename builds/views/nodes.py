"""The builder nodes page: health at a glance for staff, check now, drain and undrain.

The same rights as the nodes API (builds.api.nodes.may_manage_nodes): `view` to see the page,
`change` for its buttons. The admin stays for raw editing; the page links to it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from builds.api.nodes import may_manage_nodes
from builds.models import Build, BuilderNode
from builds.nodes import check_node
from portal.http import Request


def _require(request: Request, needed: str) -> None:
    if not may_manage_nodes(request.user, needed):
        raise PermissionDenied(f"builder nodes are managed by staff ({needed} permission)")


def health(node: BuilderNode) -> str:
    """healthy / unhealthy as the last check found the node, unknown before any check."""
    if node.last_checked_at is None:
        return "unknown"
    return "healthy" if node.reachable else "unhealthy"


def _running(nodes: list[BuilderNode]) -> dict[int, list[int]]:
    """node pk -> the running builds with a platform on it (as BuilderNode.running_builds)."""
    rows = Build.objects.filter(
        state=Build.State.RUNNING, platform_states__node__in=nodes
    ).values_list("platform_states__node", "pk")
    running: dict[int, set[int]] = defaultdict(set)
    for node_pk, build_pk in rows:
        running[node_pk].add(build_pk)
    return {pk: sorted(builds) for pk, builds in running.items()}


@login_required
def node_list(request: Request) -> HttpResponse:
    _require(request, "view")
    nodes = list(BuilderNode.objects.prefetch_related("reserved_for"))
    running = _running(nodes)
    rows: list[dict[str, Any]] = [
        {"node": node, "health": health(node), "running": running.get(node.pk, [])}
        for node in nodes
    ]
    may_change = may_manage_nodes(request.user, "change")
    return render(request, "builds/node_list.html", {"rows": rows, "may_change": may_change})


@login_required
@require_POST
def node_action(request: Request, pk: int) -> HttpResponse:
    """check: the health check the API's /check runs; enable / disable: drain or undrain."""
    _require(request, "change")
    node = get_object_or_404(BuilderNode, pk=pk)
    action = request.POST.get("action")
    if action == "check":
        check_node(node)
        if node.reachable:
            messages.success(request, f"{node.name} is healthy.")
        else:
            messages.error(request, f"{node.name} is unhealthy: {node.last_error}")
    elif action in ("enable", "disable"):
        node.enabled = action == "enable"
        node.save(update_fields=["enabled"])  # only this: a check may be saving health now
        done = "enabled: new builds may start there" if node.enabled else "disabled: drained"
        messages.success(request, f"{node.name} {done}.")
    else:
        messages.error(request, "Choose check, enable or disable.")
    return redirect("nodes")
