"""Team and token pages. Each view: look up with an access check, validate, call a service,
render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from portal import gitaccess, team_secrets
from portal import teams as services_team
from portal.access import (
    get_project_for_user,
    get_team_for_user,
    is_team_admin,
)
from portal.forms import MembershipForm, TokenForm
from portal.grammar import InvalidValue
from portal.http import Request, posted_pk, team_admin_form
from portal.models import ApiToken, Team


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
def team_detail(request: Request, slug: str) -> HttpResponse:
    """Members of a team; its admins add members, change roles and remove them."""
    team = get_team_for_user(request.user, slug)
    is_admin = is_team_admin(request.user, team)
    form = MembershipForm(request.POST or None, team=team)
    if request.method == "POST":
        if not is_admin:
            return HttpResponse("only team admins manage members", status=403)
        if "membership" in request.POST:  # a row's role select or remove button
            membership = get_object_or_404(team.memberships, pk=posted_pk(request, "membership"))
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
            "secrets": team.secrets.prefetch_related("projects"),
            "projects": team.projects.order_by("name"),
        },
    )


@sensitive_post_parameters("token")
@login_required
@require_POST
def project_git_access(request: Request, pk: int) -> HttpResponse:
    """Team admins: set or remove the git token, or make a new deploy key."""
    project = get_project_for_user(request.user, pk)
    if not is_team_admin(request.user, project.team):
        raise PermissionDenied("repository access is managed by team admins")
    action = request.POST.get("action")
    if action == "rotate":
        gitaccess.rotate_deploy_key(project)
        messages.success(request, "New deploy key: add it to the repository again.")
    elif action == "clear-token":
        gitaccess.clear_git_token(project)
        messages.info(request, "Git token removed.")
    elif action == "token":
        try:
            gitaccess.set_git_token(
                project, request.POST.get("username", ""), request.POST.get("token", "")
            )
        except InvalidValue as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Git token saved.")
    return redirect(project)


@team_admin_form("value", refusal="only team admins manage build secrets")
def team_secret(request: Request, team: Team) -> HttpResponse:
    """Team admins create, rotate and delete build secrets; values are never shown."""
    action = request.POST.get("action")
    name = request.POST.get("name", "")
    projects = request.POST.getlist("projects")
    try:
        if action == "create":
            team_secrets.create(team, name, request.POST.get("value"), projects, request.user)
            messages.success(request, f"saved secret {name}")
        else:
            secret = team_secrets.find(team, name)
            if secret is None:
                messages.error(request, "no such secret")
            elif action == "rotate":
                team_secrets.rotate(secret, request.POST.get("value"), projects or None)
                messages.success(request, f"rotated secret {name}")
            elif action == "delete":
                secret.delete()
                messages.info(request, f"deleted secret {name}")
    except InvalidValue as exc:
        messages.error(request, str(exc))
    return redirect("team", team.slug)
