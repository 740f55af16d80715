"""A team's build tools: manual merges and registry logins."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from builds import credentials, manual_merge, registry
from portal.access import get_team_for_user
from portal.grammar import InvalidValue
from portal.http import Request, posted_pk, team_admin_form
from portal.models import Team
from portal.sealing import SealError


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
            return render(request, "builds/team_merge.html#preview", context)
    return render(request, "builds/team_merge.html", context)


@team_admin_form("password", refusal="only team admins manage registry logins")
def team_credentials(request: Request, team: Team) -> HttpResponse:
    """Team admins save, test and delete registry logins; the password is never shown."""
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
        login = get_object_or_404(team.credentials, pk=posted_pk(request, "credential"))
        if action == "test":
            try:
                ok, message = credentials.test_connection(login)
            except InvalidValue as exc:  # the outbound guard refused the registry
                ok, message = False, str(exc)
            (messages.success if ok else messages.error)(request, message)
        elif action == "delete":
            login.delete()
            messages.info(request, f"deleted the login for {login.registry}")
    return redirect("team", team.slug)
