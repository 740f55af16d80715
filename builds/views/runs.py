"""One build: its live page and its cancel button."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from builds import services
from builds.access import get_build_for_user
from builds.models import Build
from builds.planner import Plan, equivalent_cli
from portal.grammar import InvalidValue
from portal.http import Request


@login_required
@require_GET
def build_detail(request: Request, pk: int) -> HttpResponse:
    build = get_build_for_user(request.user, pk)
    lines = list(build.log_lines.all())
    return render(
        request,
        "builds/build_detail.html",
        {
            "build": build,
            "project": build.project,
            "lines": lines,
            "last_seq": lines[-1].seq if lines else 0,
            "platforms": build.platform_states.select_related("node"),
            "manifest": build.manifests.order_by("pk").first(),
            "cli": _equivalent_cli(build),
        },
    )


def _equivalent_cli(build: Build) -> list[str]:
    if not build.plan.get("steps"):
        return []
    plan = Plan.from_json(build.plan)
    return equivalent_cli(plan, build.project.image, build.tags, build.pk)


@login_required
@require_POST
def build_rebuild(request: Request, pk: int) -> HttpResponse:
    build = get_build_for_user(request.user, pk)
    try:
        again = services.rebuild(build, request.user)
    except InvalidValue as exc:
        messages.error(request, f"Cannot build again: {exc}")
        return redirect(build)
    messages.success(request, f"Build {again.pk} queued: build {build.pk} again.")
    return redirect(again)


@login_required
@require_POST
def build_cancel(request: Request, pk: int) -> HttpResponse:
    build = services.cancel_build(get_build_for_user(request.user, pk))
    if request.htmx:
        return HttpResponse(status=204)  # the new state arrives over the websocket
    messages.info(request, "Cancel requested." if not build.finished else f"Build {build.state}.")
    return redirect(build)
