"""A project's settings page: the registration form without team, name and image, with the
same live Dockerfile preview, and the default build strategy (builder:<name> included). Team
admins only: the git URL decides where the project's deploy key and token are sent."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render

from builds import services
from builds.views.projects import plugin_options, preview
from portal.access import get_project_for_user, is_team_admin
from portal.forms import OPTION_PREFIX, ProjectForm
from portal.http import Request


@login_required
def project_settings(request: Request, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    if not is_team_admin(request.user, project.team):
        raise PermissionDenied("a project's settings are changed by its team's admins")
    strategies = services.strategy_choices()
    if request.method == "POST":
        form = ProjectForm(request.POST, user=request.user, instance=project, strategies=strategies)
        if request.POST.get("_preview") and request.htmx:
            return render(request, "builds/project_new.html#preview", preview(form))
        if form.is_valid():
            form.save()
            messages.success(request, f"Settings of {project} saved.")
            return redirect(project)
        data, shown = form.data, form
    else:
        data = {OPTION_PREFIX + key: value for key, value in project.options.items()}
        form = ProjectForm(
            initial={
                "git_url": project.git_url,
                "ref": project.ref,
                "platforms": project.platforms,
                "tags": " ".join(project.tag_templates),
                "immutable_tags": project.immutable_tags,
                "registry_cache": project.registry_cache,
                "language": project.language,
                "strategy": project.strategy,
            },
            user=request.user,
            instance=project,
            strategies=strategies,
        )
        shown = ProjectForm({**data, "language": project.language}, user=request.user)
    language = str(form.data.get("language") or project.language)
    return render(
        request,
        "builds/project_settings.html",
        {
            "project": project,
            "form": form,
            "options": plugin_options(language, data),
            **preview(shown),
        },
    )
