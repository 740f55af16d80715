"""API: detect a source, render a project's Dockerfile, queue, follow and cancel builds."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from pydantic import Field

from builds import gitauth, services
from builds.access import get_build_for_user
from builds.gitsource import SourceError
from builds.planner import BUILDER, BUILDER_STRATEGY, DEFAULT_STRATEGY, STRATEGIES
from portal.access import get_project_for_user, get_team_for_user
from portal.apiview import Body, Op, Param, Schema, api_view, array_of, error, int_param, shape
from portal.grammar import InvalidValue

MAX_LOG_LINES = 5000

BUILD = Schema(
    "Build",
    shape(
        id="integer",
        project="integer",
        state={"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
        reason="string",
        reason_line={"type": ["integer", "null"], "description": "log seq the reason is from"},
        strategy="string",
        plan="object",
        platforms={
            "type": "object",
            "description": "per platform: state (pending, running, done, failed, cancelled), "
            "node, method, seconds, digest, failed_step, reason, arch_check ({binary, "
            "machine, ok: true, false or null when there was nothing to check, note})",
        },
        manifest=shape(tag="string", digest="string", platforms="object")
        | {"type": ["object", "null"]},
        attestations=array_of(
            shape(digest="string", platform="string", kinds="string")
            | {"description": "attestation manifests (provenance, sbom) and their platform"}
        ),
    ),
)
LOG = Schema(
    "Log",
    shape(
        lines=array_of(shape(seq="integer", platform="string?", stream="integer", text="string")),
        next="integer",
        more="boolean",
        state="string",
    ),
)


class DetectIn(Body):
    team: str = Field(description="team slug: only members may make the portal fetch")
    git_url: str
    ref: str = "main"
    project: int | None = Field(
        default=None,
        ge=1,
        lt=10**18,
        description="a saved project of the team: fetch with its deploy key/token",
    )
    git_username: str | None = Field(default=None, description="with git_token")
    git_token: str | None = Field(
        default=None, description="one-off https token for a project not saved yet; never stored"
    )


def _strategies(schema: dict[str, Any]) -> None:
    """The strategy field's text and choices, read from the registry when the document is made."""
    listed = "; ".join(f"{s.key}: {s.summary}" for s in (*STRATEGIES.values(), BUILDER))
    schema["description"] = f"default {DEFAULT_STRATEGY}; {listed}"
    schema["anyOf"] = [{"enum": list(STRATEGIES)}, {"pattern": f"^{BUILDER_STRATEGY.pattern}$"}]


class BuildIn(Body):
    ref: str | None = None
    tags: list[str] | None = None
    strategy: str | None = Field(default=None, json_schema_extra=_strategies)


@api_view(POST=Op("Fetch a source and say which plugin fits, with options", body=DetectIn))
def detect(request: HttpRequest, body: Any) -> HttpResponse:
    # Fetching runs with the portal's own git access: only for members of a team.
    team = get_team_for_user(request.user, body["team"])
    project = None
    if "project" in body:
        project = get_project_for_user(request.user, body["project"])
        if project.team_id != team.pk:
            return error(400, "the project is not one of this team's")
    try:
        access = gitauth.for_detect(
            team.pk, body["git_url"], project, body.get("git_username"), body.get("git_token")
        )
        return JsonResponse(
            services.detect_source(body["git_url"], body.get("ref") or "main", access)
        )
    except InvalidValue as exc:
        return error(400, str(exc))
    except SourceError as exc:
        return error(422, f"could not fetch the source: {exc}")


@api_view(GET=Op("The Dockerfile the project builds with", answers="text/plain"))
def project_dockerfile(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    try:
        dockerfile = services.render_dockerfile(project).dockerfile
    except (KeyError, ValueError) as exc:  # unknown plugin, options no longer valid
        return error(409, f"cannot render the Dockerfile: {exc}")
    return HttpResponse(dockerfile, content_type="text/plain; charset=utf-8")


@api_view(POST=Op("Queue a build", body=BuildIn, status=201, answers=BUILD))
def project_builds(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    try:
        build = services.queue_build(
            project, request.user, body.get("ref"), body.get("tags"), body.get("strategy")
        )
    except InvalidValue as exc:
        return error(400, str(exc))
    data = build.to_api()
    data["url"] = request.build_absolute_uri(build.get_absolute_url())
    return JsonResponse(data, status=201)


@api_view(GET=Op("One build", answers=BUILD))
def build_detail(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    return JsonResponse(get_build_for_user(request.user, pk).to_api())


AFTER = Param("after", "only lines after this seq", {"type": "integer", "minimum": 0})


@api_view(GET=Op("A build's log lines, in order", answers=LOG, query=(AFTER,)))
def build_log(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    build = get_build_for_user(request.user, pk)
    try:
        after = int_param(request, "after")
    except InvalidValue as exc:
        return error(400, str(exc))
    lines = list(build.log_lines.filter(seq__gt=after).order_by("seq")[:MAX_LOG_LINES])
    return JsonResponse(
        {
            "lines": [line.to_api() for line in lines],
            "next": lines[-1].seq if lines else after,
            "more": len(lines) == MAX_LOG_LINES,
            "state": build.state,
        }
    )


@api_view(
    POST=Op("Build again: same project, commit, tags and strategy", status=201, answers=BUILD)
)
def build_rebuild(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    build = get_build_for_user(request.user, pk)
    try:
        again = services.rebuild(build, request.user)
    except InvalidValue as exc:
        return error(400, str(exc))
    data = again.to_api()
    data["url"] = request.build_absolute_uri(again.get_absolute_url())
    return JsonResponse(data, status=201)


@api_view(POST=Op("Cancel a build (it stops at the next step)", status=202, answers=BUILD))
def build_cancel(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    build = services.cancel_build(get_build_for_user(request.user, pk))
    return JsonResponse(build.to_api(), status=202)
