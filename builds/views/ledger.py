"""The pushed-manifest ledger pages: a project's, a team's, and one record with drift."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from builds import chain, credentials, ledger, registry
from builds.access import manifests_for
from portal.access import get_project_for_user, get_team_for_user
from portal.grammar import InvalidValue
from portal.grammar.reference import parse_reference
from portal.http import Request
from portal.sealing import SealError


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
        "builds/project_history.html",
        context
        | {"pushes": ledger.pushes(records), "params": params, "error": error, "query": query},
    )


@login_required
@require_GET
def project_history(request: Request, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    records = project.manifests.select_related("pushed_by", "build", "team")
    return _ledger_page(request, records, {"project": project}, f"{project.name}-manifests")


@login_required
@require_GET
def team_history(request: Request, slug: str) -> HttpResponse | StreamingHttpResponse:
    """The team's ledger: its builds and merges, filterable by project too."""
    team = get_team_for_user(request.user, slug)
    if request.GET.get("format") == "jsonl":  # the whole chain, as `ledger verify --file` reads it
        lines = (json.dumps(row, sort_keys=True) + "\n" for row in chain.rows(team.pk))
        response = StreamingHttpResponse(lines, content_type="application/jsonl; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{team.slug}-ledger.jsonl"'
        return response
    records = manifests_for(request.user).filter(Q(team=team) | Q(project__team=team))
    extra = {
        "team": team,
        "projects": team.projects.order_by("name"),
        "chain_head": chain.head(team.pk),
    }
    return _ledger_page(request, records, extra, f"{team.slug}-manifests", allow_project=True)


@login_required
@require_GET
def team_ledger_verify(request: Request, slug: str) -> HttpResponse:
    """htmx: recompute the team's chain and say whether it holds, or the first row that does not."""
    team = get_team_for_user(request.user, slug)
    verdict = chain.verify_team(team.pk)
    return render(request, "builds/project_history.html#verdict", {"verdict": verdict})


@login_required
@require_GET
def manifest_detail(request: Request, pk: int) -> HttpResponse:
    """One ledger record: the index as recorded and its platforms. What the registry serves for
    that tag now comes after the page (htmx, manifest_drift): a slow registry never holds it."""
    record = get_object_or_404(manifests_for(request.user), pk=pk)
    return render(request, "builds/manifest_detail.html", {"record": record})


@login_required
@require_GET
def manifest_drift(request: Request, pk: int) -> HttpResponse:
    """What the registry serves for the record's tag now (drift: moved or deleted since)."""
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
        "builds/manifest_detail.html#drift",
        {"record": record, "current": current, "registry_error": error, "tag": tag},
    )
