"""JSON API v1, the portal's part: the index, the OpenAPI document and projects.

Same access rules as the pages: outside the team, 404. Build routes live in `builds.api`.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from portal.access import get_project_for_user, projects_for
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
    options: dict[str, Any] = {}


@api_view(GET=Op("The API: its routes and where its OpenAPI document is"))
def index(request: HttpRequest, body: Any) -> HttpResponse:
    document = openapi_document(request.build_absolute_uri(reverse("api-index")))
    return JsonResponse(
        {
            "openapi": request.build_absolute_uri(reverse("api-openapi")),
            "paths": {path: sorted(ops) for path, ops in document["paths"].items()},
        }
    )


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
    form = ProjectForm(body, user=request.user)
    if not form.is_valid():
        return error(400, "invalid project", fields=form.errors.get_json_data())
    project = form.save()
    return JsonResponse(project.to_api(), status=201)


@api_view(GET=Op("One project", answers=PROJECT))
def project_detail(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    return JsonResponse(get_project_for_user(request.user, pk).to_api())


@csrf_exempt
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any other path under /api/: 401 without a token, as on every route, then a JSON 404."""
    _, refusal = authenticate(request)
    if refusal is not None:
        return refusal
    return error(404, f"no API route {request.path}")
