"""API: named multi-node buildx builders, for staff holding the builder node permissions
(the check of builds/api/nodes.py: GET `view`, POST `add`, the actions `change`, DELETE
`delete`).

Every change answers with the commands it ran (as an admin would type them), their exit status
and output. A change buildx refused, or a node that could not join, answers 409 with the reason
in `error` and was undone (builds/builders.py): nothing half-made is left.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from pydantic import Field

from builds import builders
from builds.api.nodes import node_permission
from builds.models import BuilderNode, BuildxBuilder
from portal.apiview import Body, Op, Schema, api_view, array_of, error, shape
from portal.grammar import InvalidValue

MEMBER = shape(node="integer", name="string", platforms=array_of("string"))
BUILDER = Schema("Builder", shape(name="string", created_at="string", nodes=array_of(MEMBER)))
COMMAND = shape(command="string", exit_code="integer", output="string")
CHANGE = Schema(
    "BuilderChange",
    shape(
        builder={"oneOf": [{"$ref": "#/components/schemas/Builder"}, {"type": "null"}]},
        commands=array_of(COMMAND),
        error="string",
    ),
)


class MemberIn(Body):
    node: int = Field(description="a builder node's id (GET /api/v1/nodes)")
    platforms: list[str] = Field(
        default_factory=list,
        description="what this node serves (buildx create --platform); empty: all it offers",
        examples=[["linux/arm64"]],
    )


class BuilderIn(Body):
    name: str = Field(description="lowercase letters, digits, '-' and '_'", examples=["fleet"])
    nodes: list[MemberIn] = Field(min_length=1, max_length=16)


class LeaveIn(Body):
    node: int


def _builder(name: str) -> BuildxBuilder:
    builder = BuildxBuilder.objects.filter(name=name).first()
    if builder is None:
        raise Http404("no such builder")
    return builder


def _members(entries: list[dict[str, Any]]) -> list[tuple[BuilderNode, list[str]]]:
    """Each entry's node (404 names the missing id) and its platforms, checked."""
    found = BuilderNode.objects.in_bulk([e["node"] for e in entries])
    members = []
    for entry in entries:
        node = found.get(entry["node"])
        if node is None:
            raise Http404(f"no node with id {entry['node']}")
        members.append((node, builders.validate_platforms(entry.get("platforms", []))))
    return members


def _answer(outcome: builders.Outcome, name: str, status: int = 200) -> JsonResponse:
    builder = BuildxBuilder.objects.filter(name=name).first()
    body = {
        "builder": builder.to_api() if builder else None,
        "commands": outcome.to_api(),
        "error": outcome.error,
    }
    return JsonResponse(body, status=status if outcome.ok else 409)


@api_view(
    GET=Op("Named buildx builders and their nodes", staff=True),
    POST=Op(
        "Make a builder of nodes, each serving its platforms (all or nothing)",
        BuilderIn,
        201,
        CHANGE,
        staff=True,
    ),
)
@node_permission()
def builders_list(request: HttpRequest, body: Any) -> HttpResponse:
    if request.method == "GET":
        found = BuildxBuilder.objects.prefetch_related("memberships__node")
        return JsonResponse({"builders": [b.to_api() for b in found]})
    try:
        builders.validate_name(body["name"])
        members = _members(body["nodes"])
        outcome = builders.create(body["name"], members)
    except InvalidValue as exc:
        return error(400, str(exc))
    if not outcome.ok and not outcome.results:  # refused before any command: a name taken
        return error(409, outcome.error)
    return _answer(outcome, body["name"], 201)


@api_view(
    GET=Op("One builder", answers=BUILDER, staff=True),
    DELETE=Op("Remove the builder and its BuildKit containers", answers=CHANGE, staff=True),
)
@node_permission()
def builder_detail(request: HttpRequest, body: Any, name: str) -> HttpResponse:
    builder = _builder(name)
    if request.method == "DELETE":
        return _answer(builders.remove(builder), name)
    return JsonResponse(builder.to_api())


@api_view(POST=Op("Append one node (buildx create --append)", MemberIn, answers=CHANGE, staff=True))
@node_permission("change")
def builder_append(request: HttpRequest, body: Any, name: str) -> HttpResponse:
    builder = _builder(name)
    try:
        [(node, platforms)] = _members([body])
        outcome = builders.append(builder, node, platforms)
    except InvalidValue as exc:
        return error(400, str(exc))
    if not outcome.ok and not outcome.results:
        return error(409, outcome.error)
    return _answer(outcome, name)


@api_view(POST=Op("Take a node out (buildx create --leave)", LeaveIn, answers=CHANGE, staff=True))
@node_permission("change")
def builder_leave(request: HttpRequest, body: Any, name: str) -> HttpResponse:
    builder = _builder(name)
    [(node, _)] = _members([body])
    outcome = builders.leave(builder, node)
    if not outcome.ok and not outcome.results:
        return error(409, outcome.error)
    return _answer(outcome, name)


@api_view(
    POST=Op("Start every node's BuildKit (buildx inspect --bootstrap)", answers=CHANGE, staff=True)
)
@node_permission("change")
def builder_bootstrap(request: HttpRequest, body: Any, name: str) -> HttpResponse:
    return _answer(builders.bootstrap(_builder(name)), name)
