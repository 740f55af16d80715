"""Project pages: register (detection, a live Dockerfile preview), the project page, its
Dockerfile (generated or the team's own) and the Build button."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Subquery
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

import lang_plugins
from builds import gitauth, lint, services, webhooks
from builds.api import hooks
from builds.gitsource import SourceError
from builds.models import Build
from portal import gitaccess
from portal.access import get_project_for_user, get_team_for_user, projects_for, teams_for
from portal.forms import OPTION_PREFIX, ProjectForm
from portal.grammar import InvalidValue
from portal.http import Request


def plugin_options(language: str, data: Mapping[str, Any] | None = None) -> list[dict[str, object]]:
    try:
        plugin = lang_plugins.get_plugin(language)
    except KeyError:
        return []
    data = data or {}
    return [
        {
            "field": OPTION_PREFIX + option.name,
            "option": option,
            "value": data.get(OPTION_PREFIX + option.name, option.default),
        }
        for option in plugin.options
    ]


def preview(form: ProjectForm) -> dict[str, object]:
    """The Dockerfile for the form's language and options with its checks, or what is wrong."""
    language = form.data.get("language") or "go"
    try:
        plugin = lang_plugins.get_plugin(str(language))
        options = plugin.clean_options(form.raw_options({o.name for o in plugin.options}))
        dockerfile = plugin.render(options, mirror=settings.PORTAL_BASE_IMAGE_MIRROR).dockerfile
    except (KeyError, ValueError) as exc:
        return {"dockerfile": "", "error": str(exc), "findings": []}
    except ValidationError as exc:  # from raw_options
        return {"dockerfile": "", "error": "; ".join(exc.messages), "findings": []}
    return {"dockerfile": dockerfile, "error": "", "findings": lint.check(dockerfile)}


@login_required
@require_GET
def project_list(request: Request) -> HttpResponse:
    """Home: the user's projects, each with its last build (state, when), in one query."""
    last = Build.objects.filter(project=OuterRef("pk")).order_by("-created_at", "-pk")
    projects = projects_for(request.user).annotate(
        last_build_id=Subquery(last.values("pk")[:1]),
        last_build_state=Subquery(last.values("state")[:1]),
        last_build_at=Subquery(last.values("created_at")[:1]),
    )
    return render(
        request, "portal/home.html", {"teams": teams_for(request.user), "projects": projects}
    )


@login_required
def project_new(request: Request) -> HttpResponse:
    if request.method == "POST":
        form = ProjectForm(request.POST, user=request.user)
        if request.POST.get("_preview") and request.htmx:
            return render(request, "builds/project_new.html#preview", preview(form))
        if form.is_valid():
            project = form.save()
            messages.success(request, f"Project {project} registered.")
            return redirect(project)
    else:
        teams = teams_for(request.user)
        form = ProjectForm(initial={"team": teams.first(), "language": "go"}, user=request.user)
    language = str(form.data.get("language") or "go")
    shown = preview(form if form.is_bound else ProjectForm({}, user=request.user))
    return render(
        request,
        "builds/project_new.html",
        {
            "form": form,
            "options": plugin_options(language, form.data if form.is_bound else None),
            **shown,
        },
    )


@sensitive_post_parameters("detect_git_token")
@login_required
@require_POST
def project_detect(request: Request) -> HttpResponse:
    """htmx: clone the source, let the plugins look at it, and fill the form with the result."""
    # Fetching runs with the portal's own git access: only for members of the chosen team.
    team = get_team_for_user(request.user, request.POST.get("team", ""))
    try:
        access = gitauth.for_detect(
            team.pk,
            request.POST.get("git_url", ""),
            username=request.POST.get("detect_git_username"),
            token=request.POST.get("detect_git_token"),
        )
        result = services.detect_source(
            request.POST.get("git_url", ""), request.POST.get("ref") or "main", access
        )
    except (InvalidValue, SourceError) as exc:
        return render(request, "builds/project_new.html#detected", {"detect_error": str(exc)})
    data = {OPTION_PREFIX + key: value for key, value in result["options"].items()}
    form = ProjectForm(initial={"language": result["language"] or "go"}, user=request.user)
    return render(
        request,
        "builds/project_new.html#detected",
        {
            "detected": result,
            "form": form,
            "options": plugin_options(str(result["language"] or "go"), data),
        },
    )


@login_required
@require_GET
def project_options(request: Request) -> HttpResponse:
    """htmx: the option fields of the chosen language plugin."""
    language = request.GET.get("language", "")
    return render(request, "builds/project_new.html#options", {"options": plugin_options(language)})


@login_required
@require_GET
def project_detail(request: Request, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    try:
        dockerfile, error = services.render_dockerfile(project).dockerfile, ""
    except (KeyError, ValueError) as exc:
        dockerfile, error = "", str(exc)
    return render(
        request,
        "builds/project_detail.html",
        {
            "project": project,
            "dockerfile": dockerfile,
            "error": error,
            "findings": lint.check(dockerfile) if dockerfile else [],
            "builds": project.builds.select_related("requested_by")[:20],
            "strategies": services.strategy_choices(),
            "git_access": gitaccess.page(project, request.user),
            "webhook": webhooks.page(project, request.user, request.build_absolute_uri),
        },
    )


@login_required
@require_POST
def project_webhook(request: Request, pk: int) -> HttpResponse:
    """The page's button (team admins): make the webhook or give it a new secret, shown on
    this answer only (never kept in a message or the session)."""
    project = hooks.admin_project(request.user, pk)
    hook, secret = webhooks.rotate(project, request.user)
    url = request.build_absolute_uri(webhooks.path(hook))
    context = {"project": project, "url": url, "secret": secret}
    response = render(request, "builds/project_webhook.html", context)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def project_dockerfile(request: Request, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    try:
        dockerfile = services.render_dockerfile(project).dockerfile
    except (KeyError, ValueError) as exc:  # unknown plugin, options no longer valid
        return HttpResponse(
            f"cannot render the Dockerfile: {exc}\n", status=409, content_type="text/plain"
        )
    response = HttpResponse(dockerfile, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="Dockerfile"'
    return response


@login_required
def project_dockerfile_edit(request: Request, pk: int) -> HttpResponse:
    """Replace the generated Dockerfile with the team's own: diff against the generated one and
    the same checks as the preview, live (htmx) while typing; saved only without errors."""
    project = get_project_for_user(request.user, pk)
    try:
        generated = services.generated_dockerfile(project).dockerfile
    except (KeyError, ValueError) as exc:
        return HttpResponse(f"cannot render: {exc}", status=409, content_type="text/plain")
    text = project.custom_dockerfile or generated
    if request.method == "POST":
        if request.POST.get("reset"):
            project.custom_dockerfile = ""
            project.save(update_fields=["custom_dockerfile"])
            messages.info(request, "Back to the generated Dockerfile.")
            return redirect(project)
        text = request.POST.get("dockerfile", "").replace("\r\n", "\n")
        if request.POST.get("_check") and request.htmx:
            context = {
                "findings": lint.check(text),
                "diff": services.dockerfile_diff(generated, text),
            }
            return render(request, "builds/project_dockerfile.html#check", context)
        findings = services.save_custom_dockerfile(project, text)
        if not lint.has_errors(findings):
            custom = bool(project.custom_dockerfile)
            messages.success(request, "Dockerfile saved." if custom else "Using the generated one.")
            return redirect(project)
    return render(
        request,
        "builds/project_dockerfile.html",
        {
            "project": project,
            "text": text,
            "findings": lint.check(text),
            "diff": services.dockerfile_diff(generated, text),
        },
    )


@login_required
@require_POST
def project_build(request: Request, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    tags = request.POST.get("tags", "").split() or None
    try:
        build = services.queue_build(
            project,
            request.user,
            request.POST.get("ref") or None,
            tags,
            request.POST.get("strategy") or None,
        )
    except InvalidValue as exc:
        messages.error(request, str(exc))
        return redirect(project)
    if request.htmx:
        return HttpResponseClientRedirect(build.get_absolute_url())
    return redirect(build)
