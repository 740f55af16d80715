"""API: the pushed-manifest ledger, manual merges and the team's registry logins."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from pydantic import Field

from builds import credentials as registry_logins
from builds import ledger, manual_merge
from builds.access import manifests_for
from builds.models import RegistryCredential
from builds.registry import RegistryError
from portal.access import get_project_for_user, get_team_for_user, is_team_admin, teams_for
from portal.apiview import Body, Op, Param, Schema, api_view, error, int_param, shape
from portal.grammar import InvalidValue
from portal.models import Team

MAX_RECORDS = 5000
MANIFEST = Schema(
    "Manifest",
    shape(
        id="integer",
        kind={"enum": ["build", "merge"]},
        tag="string",
        digest="string",
        platforms="object",
        pushed_by="string?",
        pushed_at={"type": "string", "format": "date-time"},
        source="object",
    ),
)
CREDENTIAL = Schema(
    "Credential",
    shape(
        id="integer", team="string", registry="string", username="string", last_test_ok="boolean?"
    ),
)
LEDGER_FILTERS = tuple(Param(name, f"only records matching {name}") for name in ledger.FILTERS) + (
    Param("format", "csv for a CSV export", {"enum": ["json", "csv"]}),
)
TEAM = Param("team", "team slug (team admins only)")


class MergeIn(Body):
    team: str = Field(description="team slug")
    target: str = Field(description="the tag to push, e.g. registry.example.com/team/app:1.0")
    sources: list[str] = Field(description="images built apart, one platform (or more) each")
    platforms: dict[str, str] | None = Field(
        default=None, description="reference -> os/arch[/variant], as docker manifest annotate"
    )
    dry_run: bool = False


class CredentialIn(Body):
    team: str
    registry: str
    username: str
    password: str = Field(description="write-only: stored sealed, never answered")


@api_view(GET=Op("The pushed-manifest ledger, newest first", query=LEDGER_FILTERS))
def manifests(request: HttpRequest, body: Any) -> HttpResponse:
    records = manifests_for(request.user)
    try:
        if "project" in request.GET:
            get_project_for_user(request.user, int_param(request, "project"))
        if "team" in request.GET:
            get_team_for_user(request.user, request.GET["team"])
        records = ledger.filter_records(records, request.GET)
    except InvalidValue as exc:
        return error(400, str(exc))
    records = records[:MAX_RECORDS]
    if request.GET.get("format") == "csv":
        response = HttpResponse(ledger.to_csv(records), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="manifests.csv"'
        return response
    return JsonResponse({"manifests": [r.to_api() for r in records]})


@api_view(POST=Op("Join images built apart into one tag", MergeIn, 201, MANIFEST))
def merges(request: HttpRequest, body: Any) -> HttpResponse:
    """`dry_run` answers the index it would push, and pushes nothing."""
    team = get_team_for_user(request.user, body["team"])
    try:
        with registry_logins.using_login(team.pk, body["target"]):
            plan = manual_merge.plan(team, body["target"], body["sources"], body.get("platforms"))
            preview = {"index": plan.index(), "commands": plan.commands()}
            if body.get("dry_run"):
                return JsonResponse(preview)
            record = manual_merge.push(plan, request.user)
    except InvalidValue as exc:
        return error(400, str(exc))
    except RegistryError as exc:
        return error(502, f"the registry refused the merge: {exc}")
    return JsonResponse(record.to_api() | preview, status=201)


@api_view(
    GET=Op("The team's registry logins (team admins)", query=(TEAM,)),
    POST=Op("Save a registry login (team admins)", CredentialIn, 201, CREDENTIAL),
)
def credentials_list(request: HttpRequest, body: Any) -> HttpResponse:
    if request.method == "GET":
        team = _team_admin(request, request.GET.get("team", ""))
        if isinstance(team, HttpResponse):
            return team
        return JsonResponse({"credentials": [c.to_api() for c in team.credentials.all()]})
    team = _team_admin(request, body["team"])
    if isinstance(team, HttpResponse):
        return team
    try:
        login = registry_logins.save_login(
            team, body["registry"], body["username"], body["password"], request.user
        )
    except InvalidValue as exc:
        return error(400, str(exc))
    return JsonResponse(login.to_api(), status=201)


@api_view(POST=Op("Log in to the registry with the saved login now", answers=CREDENTIAL))
def credential_test(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    login = _login(request, pk)
    if isinstance(login, HttpResponse):
        return login
    try:
        registry_logins.test_connection(login)
    except InvalidValue as exc:  # the outbound guard refused the registry
        return error(400, str(exc))
    return JsonResponse(login.to_api())


@api_view(POST=Op("Delete a saved login", status=204))
def credential_delete(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    login = _login(request, pk)
    if isinstance(login, HttpResponse):
        return login
    login.delete()
    return HttpResponse(status=204)


def _team_admin(request: HttpRequest, slug: object) -> Team | HttpResponse:
    if not isinstance(slug, str) or not slug:
        return error(400, "team must be a team slug")
    team = get_team_for_user(request.user, slug)  # 404 outside the team
    if not is_team_admin(request.user, team):
        return error(403, "registry logins are managed by team admins")
    return team


def _login(request: HttpRequest, pk: int) -> RegistryCredential | HttpResponse:
    login = (
        RegistryCredential.objects.filter(pk=pk, team__in=teams_for(request.user))
        .select_related("team")
        .first()
    )
    if login is None:
        raise Http404("no such login")
    if not is_team_admin(request.user, login.team):
        return error(403, "registry logins are managed by team admins")
    return login
