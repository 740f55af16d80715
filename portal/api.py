"""JSON API v1, the portal's part: the index, the OpenAPI document and projects.

Same access rules as the pages: outside the team, 404. Build routes live in `builds.api`.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from pydantic import Field

from portal import apidocs, gitaccess
from portal.access import get_project_for_user, is_team_admin, projects_for
from portal.apiview import (
    Body,
    Op,
    Schema,
    api_view,
    array_of,
    authenticate,
    error,
    shape,
)
from portal.forms import ProjectForm
from portal.grammar import InvalidValue
from portal.openapi import openapi_document

PROJECT = Schema(
    "Project",
    shape(
        id="integer",
        team="string",
        name="string",
        language="string",
        git_url="string",
        ref="string",
        image="string",
        platforms=array_of("string"),
        options="object",
        tags=array_of("string"),
        immutable_tags="boolean",
        registry_cache="boolean",
        git_token_set="boolean",
        created_at={"type": "string", "format": "date-time"},
    ),
)


class ProjectIn(Body):
    team: str
    name: str
    language: str
    git_url: str
    ref: str = "main"
    image: str
    platforms: list[str] | str
    tags: list[str] | str = "latest"
    immutable_tags: bool = False
    registry_cache: bool = True
    options: dict[str, Any] = {}


@api_view(GET=Op("The API: its routes and where its OpenAPI document is"))
def _index(request: HttpRequest, body: Any) -> HttpResponse:
    document = openapi_document(request.build_absolute_uri(reverse("api-index")))
    return JsonResponse(
        {
            "openapi": request.build_absolute_uri(reverse("api-openapi")),
            "paths": {path: sorted(ops) for path, ops in document["paths"].items()},
        }
    )


@csrf_exempt  # as every API view: a token, never the session, authenticates
def index(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """A browser (HTML, no token) gets the reference page saying how to use a token; programs
    get the API's answer, 401 without a token as before."""
    if request.method == "GET" and apidocs.wants_page(request):
        return apidocs.docs(request)
    return _index(request, *args, **kwargs)


index.api_ops = _index.api_ops  # type: ignore[attr-defined]


@api_view(GET=Op("This document"))
def openapi(request: HttpRequest, body: Any) -> HttpResponse:
    return JsonResponse(openapi_document(request.build_absolute_uri(reverse("api-index"))))


@api_view(
    GET=Op("Projects of your teams"),
    POST=Op("Register a project", body=ProjectIn, status=201, answers=PROJECT),
)
def projects(request: HttpRequest, body: Any) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse({"projects": [p.to_api() for p in projects_for(request.user)]})
    # A form's unchecked box is an absent field; in the API, absent means the default.
    form = ProjectForm({"registry_cache": True, **body}, user=request.user)
    if not form.is_valid():
        return error(400, "invalid project", fields=form.errors.get_json_data())
    project = form.save()
    return JsonResponse(project.to_api(), status=201)


@api_view(GET=Op("One project", answers=PROJECT))
def project_detail(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    return JsonResponse(get_project_for_user(request.user, pk).to_api())


DEPLOY_KEY = Schema(
    "DeployKey", shape(public_key="string", fingerprint="string", where_to_add="string")
)


class GitTokenIn(Body):
    username: str = Field(description="the user name the git server expects with the token")
    token: str = Field(description="write-only: stored sealed, never answered")


@api_view(
    GET=Op("The project's SSH deploy key (public half)", answers=DEPLOY_KEY),
    POST=Op("Make a new deploy key; the old one stops working (team admins)", answers=DEPLOY_KEY),
)
def deploy_key(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    if request.method == "POST":
        if not is_team_admin(request.user, project.team):
            return error(403, "deploy keys are rotated by team admins")
        public = gitaccess.rotate_deploy_key(project)
    else:
        public = gitaccess.deploy_key(project)
    return JsonResponse(
        {
            "public_key": public,
            "fingerprint": gitaccess.fingerprint(public),
            "where_to_add": gitaccess.WHERE_TO_PASTE,
        }
    )


@api_view(
    PUT=Op("Set the project's https git token (team admins; write-only)", GitTokenIn, 204),
    DELETE=Op("Remove the project's git token (team admins)", status=204),
)
def git_token(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    if not is_team_admin(request.user, project.team):
        return error(403, "git tokens are managed by team admins")
    if request.method == "DELETE":
        gitaccess.clear_git_token(project)
        return HttpResponse(status=204)
    try:
        gitaccess.set_git_token(project, body["username"], body["token"])
    except InvalidValue as exc:
        return error(400, str(exc))
    return HttpResponse(status=204)


@csrf_exempt
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any other path under /api/: 401 without a token, as on every route, then a JSON 404."""
    _, refusal = authenticate(request)
    if refusal is not None:
        return refusal
    return error(404, f"no API route {request.path}")
