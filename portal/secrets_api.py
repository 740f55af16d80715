"""API: a team's build secrets. Members list names, scopes and use, never values; team
admins create, rotate and delete."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from pydantic import Field

from portal import team_secrets
from portal.access import get_team_for_user, is_team_admin
from portal.apiview import Body, Op, Schema, api_view, array_of, error, shape
from portal.grammar import InvalidValue
from portal.models import Team, TeamSecret

SECRET = Schema(
    "TeamSecret",
    shape(
        name="string",
        team="string",
        projects=array_of("string"),
        created_at={"type": "string", "format": "date-time"},
        rotated_at={"type": "string", "format": "date-time"},
        last_used_at={"type": ["string", "null"], "format": "date-time"},
    ),
)
SECRETS = Schema("TeamSecrets", shape(secrets=array_of(SECRET.schema)))
ADMINS_ONLY = "build secrets are managed by team admins"


class SecretIn(Body):
    name: str = Field(description="letter, then up to 63 letters, digits, _ or -")
    value: str = Field(description="write-only: stored sealed, never answered")
    projects: list[str] | None = Field(
        default=None, description="project names it is limited to (none: all the team's)"
    )


class RotateIn(Body):
    value: str = Field(description="the new value (write-only)")
    projects: list[str] | None = Field(default=None, description="a new scope, if given")


@api_view(
    GET=Op("The team's build secrets: names, scopes, last use (members)", answers=SECRETS),
    POST=Op("Create a build secret (team admins)", SecretIn, 201, SECRET),
)
def secrets(request: HttpRequest, body: Any, slug: str) -> HttpResponse:
    team = get_team_for_user(request.user, slug)
    if request.method == "GET":
        rows = team.secrets.prefetch_related("projects").select_related("team")
        return JsonResponse({"secrets": [s.to_api() for s in rows]})
    if not is_team_admin(request.user, team):
        return error(403, ADMINS_ONLY)
    try:
        secret = team_secrets.create(
            team, body["name"], body["value"], body.get("projects"), request.user
        )
    except team_secrets.SecretExists as exc:
        return error(409, str(exc))
    except InvalidValue as exc:
        return error(400, str(exc))
    return JsonResponse(secret.to_api(), status=201)


@api_view(
    PUT=Op("Rotate a build secret: a new value, optionally a new scope", RotateIn, 200, SECRET),
    DELETE=Op("Delete a build secret", status=204),
)
def secret_detail(request: HttpRequest, body: Any, slug: str, name: str) -> HttpResponse:
    team = get_team_for_user(request.user, slug)
    secret = _secret(team, name)
    if not is_team_admin(request.user, team):
        return error(403, ADMINS_ONLY)
    if request.method == "DELETE":
        secret.delete()
        return HttpResponse(status=204)
    try:
        team_secrets.rotate(secret, body["value"], body.get("projects"))
    except InvalidValue as exc:
        return error(400, str(exc))
    return JsonResponse(secret.to_api())


def _secret(team: Team, name: str) -> TeamSecret:
    secret = team_secrets.find(team, name)
    if secret is None:
        raise Http404("no such secret")
    return secret
