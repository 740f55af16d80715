"""API: builder nodes, for staff holding Django's model permissions on BuilderNode.

GET needs `view`, POST `add`, PATCH and the actions (check, emulators) `change`, DELETE `delete`:
the same rights the admin pages ask for.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Literal

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from pydantic import Field

from builds.forms import node_form_from_api
from builds.models import BuilderNode
from builds.nodes import check_node, install_emulators
from portal.apiview import Body, Op, Schema, api_view, array_of, error, shape
from portal.grammar import InvalidValue

View = Callable[..., HttpResponse]
NODE = Schema(
    "Node",
    shape(
        id="integer",
        name="string",
        kind={"enum": ["engine", "buildkit"]},
        endpoint="string",
        tls="boolean",
        enabled="boolean",
        max_builds="integer",
        reserved_for=array_of("string"),
        healthy="boolean",
        native_platforms=array_of("string"),
        emulated_platforms=array_of("string"),
        running_builds="integer",
        last_error="string",
    ),
)
# What each method asks of the user, as Django's codename for BuilderNode.
PERMISSION = {"GET": "view", "POST": "add", "PATCH": "change", "DELETE": "delete"}


class TlsIn(Body):
    ca: str = Field(default="", description="PEM CA certificate")
    cert: str = Field(default="", description="PEM client certificate")
    key: str = Field(default="", description="PEM client key (stored sealed, never shown)")


class NodeIn(Body):
    name: str | None = None
    kind: Literal["engine", "buildkit"] | None = Field(
        default=None,
        description="engine (default): a Docker engine; buildkit: a standalone buildkitd, "
        "used through buildx's remote driver",
    )
    endpoint: str | None = Field(
        default=None, description="unix:///path, ssh://user@host or tcp://host:port"
    )
    tls: TlsIn | None = Field(default=None, description="required for tcp:// off loopback")
    max_builds: int | None = Field(default=None, json_schema_extra={"minimum": 1, "maximum": 64})
    enabled: bool | None = None
    repair_emulators: bool | None = None
    reserved_for: list[str] | None = Field(
        default=None,
        description="team slugs whose builds alone run here; empty: shared by every team",
        examples=[["web"]],
    )


class EmulatorsIn(Body):
    platforms: list[str] = Field(min_length=1, examples=[["linux/arm64"]])


def may_manage_nodes(user: Any, needed: str) -> bool:
    """Staff holding the model permission `needed` (view, add, change, delete) on BuilderNode."""
    return bool(user.is_staff and user.has_perm(f"builds.{needed}_buildernode"))


def node_permission(action: str | None = None) -> Callable[[View], View]:
    """403 unless the user is staff with the model permission (by method, or `action`)."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            needed = action or PERMISSION[request.method or "GET"]
            if not may_manage_nodes(request.user, needed):
                return error(403, f"builder nodes are managed by staff ({needed} permission)")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def _node(pk: int) -> BuilderNode:
    try:
        return BuilderNode.objects.get(pk=pk)
    except BuilderNode.DoesNotExist:
        raise Http404("no such node") from None


def _save(body: dict[str, Any], node: BuilderNode | None = None) -> BuilderNode | HttpResponse:
    form = node_form_from_api(body, instance=node)
    if not form.is_valid():
        return error(400, "invalid node", fields=form.errors.get_json_data())
    return form.save()


@api_view(
    GET=Op("Builder nodes with their health", staff=True),
    POST=Op("Register a node; checked before any connection", NodeIn, 201, NODE, staff=True),
)
@node_permission()
def nodes(request: HttpRequest, body: Any) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse({"nodes": [n.to_api() for n in BuilderNode.objects.all()]})
    node = _save(body)
    if isinstance(node, HttpResponse):
        return node
    return JsonResponse(check_node(node).to_api(), status=201)  # checked only once valid


@api_view(
    GET=Op("One node", answers=NODE, staff=True),
    PATCH=Op("Change a node (drain: enabled=false)", NodeIn, answers=NODE, staff=True),
    DELETE=Op("Remove a node (its past builds keep their records)", status=204, staff=True),
)
@node_permission()
def node_detail(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    node = _node(pk)
    if request.method == "DELETE":
        node.delete()
        return HttpResponse(status=204)
    if request.method == "PATCH":
        saved = _save(body, node)
        if isinstance(saved, HttpResponse):
            return saved
        node = saved
    return JsonResponse(node.to_api())


@api_view(POST=Op("Check the node's health now", answers=NODE, staff=True))
@node_permission("change")
def node_check(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    return JsonResponse(check_node(_node(pk)).to_api())


@api_view(POST=Op("Install QEMU emulators (binfmt), then re-check", EmulatorsIn, staff=True))
@node_permission("change")
def node_emulators(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    node = _node(pk)
    try:
        result = install_emulators(node, body["platforms"])
    except InvalidValue as exc:
        return error(400, str(exc))
    node.refresh_from_db()
    return JsonResponse(
        {
            "command": result.command,
            "exit_code": result.code,
            "output": result.output,
            "node": node.to_api(),
        },
        status=200 if result.code == 0 else 502,
    )
