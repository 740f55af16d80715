"""Browser pages. Each view: look up with an access check, validate, call a service, render."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

import lang_plugins
from builds import credentials, ledger, lint, manual_merge, registry, services
from builds.gitsource import SourceError
from builds.models import Build
from builds.planner import Plan, equivalent_cli
from portal import teams as services_team
from portal.access import (
    get_build_for_user,
    get_project_for_user,
    get_team_for_user,
    is_team_admin,
    manifests_for,
    projects_for,
    teams_for,
)
from portal.forms import OPTION_PREFIX, MembershipForm, ProjectForm, TokenForm
from portal.grammar import InvalidValue
from portal.grammar.reference import parse_reference
from portal.models import ApiToken
from portal.sealing import SealError


class Request(HttpRequest):
    """What these views get: django-htmx's details, and (behind login_required) a real user."""

    htmx: HtmxDetails
    user: User


@login_required
@require_GET
def home(request: Request) -> HttpResponse:
    return render(
        request,
        "portal/home.html",
        {"teams": teams_for(request.user), "projects": projects_for(request.user)},
    )


def _plugin_options(
    language: str, data: Mapping[str, Any] | None = None
) -> list[dict[str, object]]:
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


def _preview(form: ProjectForm) -> dict[str, object]:
    """The Dockerfile for the form's language and options with its checks, or what is wrong."""
    language = form.data.get("language") or "go"
    try:
        plugin = lang_plugins.get_plugin(str(language))
        options = plugin.clean_options(form.raw_options())
        dockerfile = plugin.render(options, mirror=settings.PORTAL_BASE_IMAGE_MIRROR).dockerfile
    except (KeyError, ValueError) as exc:
        return {"dockerfile": "", "error": str(exc), "findings": []}
    except ValidationError as exc:  # from raw_options
        return {"dockerfile": "", "error": "; ".join(exc.messages), "findings": []}
    return {"dockerfile": dockerfile, "error": "", "findings": lint.check(dockerfile)}


@login_required
def project_new(request: Request) -> HttpResponse:
    if request.method == "POST":
        form = ProjectForm(request.POST, user=request.user)
        if request.POST.get("_preview") and request.htmx:
            return render(request, "portal/project_new.html#preview", _preview(form))
        if form.is_valid():
            project = form.save()
            messages.success(request, f"Project {project} registered.")
            return redirect(project)
    else:
        teams = teams_for(request.user)
        form = ProjectForm(initial={"team": teams.first(), "language": "go"}, user=request.user)
    language = str(form.data.get("language") or "go")
    preview = _preview(form if form.is_bound else ProjectForm({}, user=request.user))
    return render(
        request,
        "portal/project_new.html",
        {
            "form": form,
            "options": _plugin_options(language, form.data if form.is_bound else None),
            **preview,
        },
    )


@login_required
@require_POST
def project_detect(request: Request) -> HttpResponse:
    """htmx: clone the source, let the plugins look at it, and fill the form with the result."""
    # Fetching runs with the portal's own git access: only for members of the chosen team.
    get_team_for_user(request.user, request.POST.get("team", ""))
    try:
        result = services.detect_source(
            request.POST.get("git_url", ""), request.POST.get("ref") or "main"
        )
    except (InvalidValue, SourceError) as exc:
        return render(request, "portal/project_new.html#detected", {"detect_error": str(exc)})
    data = {OPTION_PREFIX + key: value for key, value in result["options"].items()}
    form = ProjectForm(initial={"language": result["language"] or "go"}, user=request.user)
    return render(
        request,
        "portal/project_new.html#detected",
        {
            "detected": result,
            "form": form,
            "options": _plugin_options(str(result["language"] or "go"), data),
        },
    )


@login_required
@require_GET
def project_options(request: Request) -> HttpResponse:
    """htmx: the option fields of the chosen language plugin."""
    language = request.GET.get("language", "")
    return render(
        request, "portal/project_new.html#options", {"options": _plugin_options(language)}
    )


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
        "portal/project_detail.html",
        {
            "project": project,
            "dockerfile": dockerfile,
            "error": error,
            "findings": lint.check(dockerfile) if dockerfile else [],
            "builds": project.builds.select_related("requested_by")[:20],
            "strategies": services.strategy_choices(),
        },
    )


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


@login_required
@require_GET
def project_history(request: Request, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    records = project.manifests.select_related("pushed_by", "build", "team")
    return _ledger_page(request, records, {"project": project}, f"{project.name}-manifests")


@login_required
@require_GET
def team_history(request: Request, slug: str) -> HttpResponse:
    """The team's ledger: its builds and merges, filterable by project too."""
    team = get_team_for_user(request.user, slug)
    records = manifests_for(request.user).filter(Q(team=team) | Q(project__team=team))
    extra = {"team": team, "projects": team.projects.order_by("name")}
    return _ledger_page(request, records, extra, f"{team.slug}-manifests", allow_project=True)


def _ledger_page(
    request: Request,
    records: Any,
    context: dict[str, Any],
    filename: str,
    allow_project: bool = False,
) -> HttpResponse:
    keys = [k for k in ledger.FILTERS if k != "team" and (allow_project or k != "project")]
    params: dict[str, str] = {key: str(request.GET[key]) for key in keys if request.GET.get(key)}
    try:
        records = ledger.filter_records(records, params)
        error = ""
    except InvalidValue as exc:
        records, error = records.none(), str(exc)
    fmt = request.GET.get("format")
    if fmt == "csv":
        response = HttpResponse(ledger.to_csv(records), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
        return response
    if fmt == "json":
        return JsonResponse({"manifests": [r.to_api() for r in records]})
    query = urlencode(params)
    return render(
        request,
        "portal/project_history.html",
        context | {"records": records, "params": params, "error": error, "query": query},
    )


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
def build_cancel(request: Request, pk: int) -> HttpResponse:
    build = services.cancel_build(get_build_for_user(request.user, pk))
    if request.htmx:
        return HttpResponse(status=204)  # the new state arrives over the websocket
    messages.info(request, "Cancel requested." if not build.finished else f"Build {build.state}.")
    return redirect(build)


@login_required
def tokens(request: Request) -> HttpResponse:
    new_token = ""
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        _, new_token = ApiToken.issue(request.user, form.cleaned_data["name"])
        form = TokenForm()
    return render(
        request,
        "portal/tokens.html",
        {"form": form, "new_token": new_token, "tokens": request.user.api_tokens.all()},
    )


@login_required
@require_POST
def token_revoke(request: Request, pk: int) -> HttpResponse:
    token = request.user.api_tokens.filter(pk=pk).first()
    if token is None:
        return HttpResponse(status=404)
    token.revoke()
    messages.info(request, f"Token {token.name} revoked.")
    return redirect("tokens")


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
            return render(request, "portal/project_dockerfile.html#check", context)
        findings = services.save_custom_dockerfile(project, text)
        if not lint.has_errors(findings):
            custom = bool(project.custom_dockerfile)
            messages.success(request, "Dockerfile saved." if custom else "Using the generated one.")
            return redirect(project)
    return render(
        request,
        "portal/project_dockerfile.html",
        {
            "project": project,
            "text": text,
            "findings": lint.check(text),
            "diff": services.dockerfile_diff(generated, text),
        },
    )


@login_required
@require_GET
def manifest_detail(request: Request, pk: int) -> HttpResponse:
    """One ledger record: the index as recorded, its platforms, and what the registry serves
    for that tag now (drift: the tag was moved or deleted since)."""
    record = get_object_or_404(manifests_for(request.user), pk=pk)
    repository, _, tag = record.reference.rpartition(":")
    current: str | None = None
    error = ""
    team_id = record.team_id or (record.project.team_id if record.project else 0)
    try:
        with credentials.using_login(team_id, record.reference):
            current = registry.current_digest(parse_reference(repository), tag)
    except (registry.RegistryError, InvalidValue, SealError) as exc:
        error = str(exc)
    return render(
        request,
        "builds/manifest_detail.html",
        {"record": record, "current": current, "registry_error": error, "tag": tag},
    )


@login_required
def team_detail(request: Request, slug: str) -> HttpResponse:
    """Members of a team; its admins add members, change roles and remove them."""
    team = get_team_for_user(request.user, slug)
    is_admin = is_team_admin(request.user, team)
    form = MembershipForm(request.POST or None, team=team)
    if request.method == "POST":
        if not is_admin:
            return HttpResponse("only team admins manage members", status=403)
        if "membership" in request.POST:  # a row's role select or remove button
            membership = get_object_or_404(team.memberships, pk=_posted_pk(request, "membership"))
            try:
                services_team.change_membership(
                    team, membership, remove="remove" in request.POST, role=request.POST.get("role")
                )
            except ValueError as exc:
                messages.error(request, str(exc))
            return redirect("team", slug=team.slug)
        if form.is_valid():
            form.save()
            messages.success(request, f"{form.cleaned_data['username']} added to {team.slug}.")
            return redirect("team", slug=team.slug)
    members = team.memberships.select_related("user").order_by("user__username")
    return render(
        request,
        "portal/team_detail.html",
        {
            "team": team,
            "members": members,
            "is_admin": is_admin,
            "form": form,
            "logins": team.credentials.all() if is_admin else [],
        },
    )


def _parse_overrides(text: str) -> dict[str, str]:
    """Lines `reference = os/arch[/variant]` of the merge form."""
    overrides = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        reference, sep, platform = line.partition("=")
        if not sep:
            raise InvalidValue("platforms", line, "write reference = os/arch[/variant]")
        overrides[reference.strip()] = platform.strip()
    return overrides


@login_required
def team_merge(request: Request, slug: str) -> HttpResponse:
    """Manual merge: preview the index (htmx), then push it under the target tag."""
    team = get_team_for_user(request.user, slug)
    context: dict[str, Any] = {"team": team, "form": request.POST}
    if request.method == "POST":
        target = request.POST.get("target", "").strip()
        sources = [s.strip() for s in request.POST.get("sources", "").splitlines() if s.strip()]
        try:
            overrides = _parse_overrides(request.POST.get("platforms", ""))
            with credentials.using_login(team.pk, target):
                plan = manual_merge.plan(team, target, sources, overrides)
                context |= {"index": plan.index(), "commands": plan.commands()}
                if request.POST.get("action") == "push":
                    record = manual_merge.push(plan, request.user)
                    messages.success(request, f"pushed {record.reference} ({record.digest})")
                    return redirect("manifest", record.pk)
        except (InvalidValue, registry.RegistryError, SealError) as exc:
            context["error"] = str(exc)
        if context.get("index"):
            context["index_json"] = json.dumps(context["index"], indent=2)
        if request.htmx:
            return render(request, "portal/team_merge.html#preview", context)
    return render(request, "portal/team_merge.html", context)


def _posted_pk(request: Request, name: str) -> int:
    """A row id from a form (0, which matches nothing, when it is not a number)."""
    value = request.POST.get(name, "")
    return int(value) if value.isascii() and value.isdecimal() else 0


@sensitive_post_parameters("password")
@login_required
@require_POST
def team_credentials(request: Request, slug: str) -> HttpResponse:
    """Team admins save, test and delete registry logins; the password is never shown."""
    team = get_team_for_user(request.user, slug)
    if not is_team_admin(request.user, team):
        return HttpResponse("only team admins manage registry logins", status=403)
    action = request.POST.get("action")
    if action == "save":
        try:
            login = credentials.save_login(
                team,
                request.POST.get("registry"),
                request.POST.get("username"),
                request.POST.get("password"),
                request.user,
            )
            messages.success(request, f"saved the login for {login.registry}")
        except InvalidValue as exc:
            messages.error(request, str(exc))
    else:
        login = get_object_or_404(team.credentials, pk=_posted_pk(request, "credential"))
        if action == "test":
            try:
                ok, message = credentials.test_connection(login)
            except InvalidValue as exc:  # the outbound guard refused the registry
                ok, message = False, str(exc)
            (messages.success if ok else messages.error)(request, f"{login.registry}: {message}")
        elif action == "delete":
            login.delete()
            messages.info(request, f"deleted the login for {login.registry}")
    return redirect("team", team.slug)
