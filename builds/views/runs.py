"""One build: its live page (a window of its log, more on request, all of it as text) and its
cancel and rebuild buttons."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from builds import buildlog, services
from builds.access import get_build_for_user
from builds.models import Build, BuilderNode
from builds.planner import Plan, equivalent_cli
from portal.apiview import int_param
from portal.grammar import InvalidValue
from portal.http import Request


@login_required
@require_GET
def build_detail(request: Request, pk: int) -> HttpResponse:
    build = get_build_for_user(request.user, pk)
    window = buildlog.page_window(build)
    return render(
        request,
        "builds/build_detail.html",
        {
            "build": build,
            "project": build.project,
            "window": window,
            "last_seq": window.last,
            "platforms": build.platform_states.select_related("node"),
            "manifest": build.manifests.order_by("pk").first(),
            "cli": _equivalent_cli(build),
        },
    )


@login_required
@require_GET
def build_log_lines(request: Request, pk: int) -> HttpResponse:
    """More of the page's log: the lines before `before` or after `after` (a window's worth),
    with the button for the next ones; htmx swaps it in place of the button that asked."""
    build = get_build_for_user(request.user, pk)
    try:
        before, after = (
            int_param(request, name) if name in request.GET else None
            for name in ("before", "after")
        )
        window = buildlog.more_lines(build, before, after)
    except InvalidValue as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    return render(request, "builds/build_detail.html#log_more", {"build": build, "window": window})


@login_required
@require_GET
def build_log_text(request: Request, pk: int) -> StreamingHttpResponse:
    """The whole log as text, streamed a batch of rows at a time (any size, little memory)."""
    build = get_build_for_user(request.user, pk)
    response = StreamingHttpResponse(
        buildlog.as_text(build), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="build-{build.pk}.log"'
    return response


def _equivalent_cli(build: Build) -> list[str]:
    if not build.plan.get("steps"):
        return []
    plan = Plan.from_json(build.plan)
    kinds = BuilderNode.objects.filter(name__in={s.node for s in plan.steps})
    remote = frozenset(kinds.filter(kind=BuilderNode.Kind.BUILDKIT).values_list("name", flat=True))
    project = build.project
    return equivalent_cli(
        plan, project.image, build.tags, build.pk, remote, registry_cache=project.registry_cache
    )


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
