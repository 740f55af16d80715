"""JSON API v1 with bearer tokens. Same access rules as the pages: outside the team, 404."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from builds import credentials as registry_logins
from builds import ledger, manual_merge, services
from builds.forms import node_form_from_api
from builds.gitsource import SourceError
from builds.models import BuilderNode, RegistryCredential
from builds.nodes import check_node, install_emulators
from builds.registry import RegistryError
from portal.access import (
    get_build_for_user,
    get_project_for_user,
    get_team_for_user,
    is_team_admin,
    manifests_for,
    projects_for,
    teams_for,
)
from portal.forms import ProjectForm
from portal.grammar import InvalidValue
from portal.models import ApiToken, Team
from portal.openapi import openapi_document
from portal.sealing import SealError

MAX_BODY = 256 * 1024
MAX_LOG_LINES = 5000

View = Callable[..., HttpResponse]


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def api_view(*methods: str) -> Callable[[View], View]:
    """Bearer-token auth, method check, JSON body parsing and 404 mapping for an API view."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return error(405, f"method {request.method} not allowed", allowed=list(methods))
            header = request.headers.get("Authorization", "")
            scheme, _, raw = header.partition(" ")
            user = ApiToken.authenticate(raw.strip()) if scheme.lower() == "bearer" else None
            if user is None:
                response = error(
                    401, "a valid API token is required (Authorization: Bearer <token>)"
                )
                response["WWW-Authenticate"] = 'Bearer realm="crossport"'
                return response
            request.user = user
            body: Any = None
            if request.method in ("POST", "PATCH"):
                if len(request.body) > MAX_BODY:
                    return error(413, "request body too large")
                try:
                    body = json.loads(request.body or b"{}")
                except ValueError:
                    return error(400, "the body must be JSON")
                if not isinstance(body, dict):
                    return error(400, "the body must be a JSON object")
            try:
                return view(request, body, *args, **kwargs)
            except Http404 as exc:
                return error(404, str(exc) or "not found")
            except SealError as exc:  # a saved secret the current key cannot open
                return error(409, str(exc))

        return wrapper

    return decorate


def _int_param(request: HttpRequest, name: str, default: int = 0) -> int:
    value = request.GET.get(name, "")
    if not value:
        return default
    if not (value.isascii() and value.isdecimal()):
        raise InvalidValue(name, value, "expected a non-negative integer")
    return int(value)


@api_view("GET")
def index(request: HttpRequest, body: Any) -> HttpResponse:
    return JsonResponse(openapi_document(request.build_absolute_uri(reverse("api-index"))))


@api_view("GET", "POST")
def projects(request: HttpRequest, body: Any) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse({"projects": [p.to_api() for p in projects_for(request.user)]})
    form = ProjectForm(body, user=request.user)
    if not form.is_valid():
        return error(400, "invalid project", fields=form.errors.get_json_data())
    project = form.save()
    return JsonResponse(project.to_api(), status=201)


@api_view("POST")
def detect(request: HttpRequest, body: Any) -> HttpResponse:
    git_url, ref, team = body.get("git_url"), body.get("ref") or "main", body.get("team")
    if not all(isinstance(v, str) for v in (git_url, ref, team)):
        return error(400, "team and git_url (and optional ref) must be strings")
    # Fetching runs with the portal's own git access: only for members of a team.
    get_team_for_user(request.user, team)
    try:
        return JsonResponse(services.detect_source(git_url, ref))
    except InvalidValue as exc:
        return error(400, str(exc))
    except SourceError as exc:
        return error(422, f"could not fetch the source: {exc}")


@api_view("GET")
def project_detail(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    return JsonResponse(get_project_for_user(request.user, pk).to_api())


@api_view("GET")
def project_dockerfile(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    try:
        dockerfile = services.render_dockerfile(project).dockerfile
    except (KeyError, ValueError) as exc:  # unknown plugin, options no longer valid
        return error(409, f"cannot render the Dockerfile: {exc}")
    return HttpResponse(dockerfile, content_type="text/plain; charset=utf-8")


@api_view("POST")
def project_builds(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    project = get_project_for_user(request.user, pk)
    unknown = set(body) - {"ref", "tags", "strategy"}
    if unknown:
        return error(400, f"unknown fields: {', '.join(sorted(unknown))}")
    ref = body.get("ref")
    if ref is not None and not isinstance(ref, str):
        return error(400, "ref must be a string")
    try:
        build = services.queue_build(
            project, request.user, ref, body.get("tags"), body.get("strategy")
        )
    except InvalidValue as exc:
        return error(400, str(exc))
    data = build.to_api()
    data["url"] = request.build_absolute_uri(build.get_absolute_url())
    return JsonResponse(data, status=201)


@api_view("GET")
def build_detail(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    return JsonResponse(get_build_for_user(request.user, pk).to_api())


@api_view("GET")
def build_log(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    build = get_build_for_user(request.user, pk)
    try:
        after = _int_param(request, "after")
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


@api_view("POST")
def build_cancel(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    build = services.cancel_build(get_build_for_user(request.user, pk))
    return JsonResponse(build.to_api(), status=202)


@api_view("GET")
def manifests(request: HttpRequest, body: Any) -> HttpResponse:
    """The ledger, newest first, narrowed by team, project, tag, person, since, until;
    `format=csv` exports the same records as CSV."""
    records = manifests_for(request.user)
    try:
        if "project" in request.GET:
            get_project_for_user(request.user, _int_param(request, "project"))
        if "team" in request.GET:
            get_team_for_user(request.user, request.GET["team"])
        records = ledger.filter_records(records, request.GET)
    except InvalidValue as exc:
        return error(400, str(exc))
    records = records[:5000]
    if request.GET.get("format") == "csv":
        response = HttpResponse(ledger.to_csv(records), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="manifests.csv"'
        return response
    return JsonResponse({"manifests": [r.to_api() for r in records]})


# --- builder nodes (staff) ---------------------------------------------------------------

NODE_FIELDS = {"name", "endpoint", "tls", "max_builds", "enabled", "repair_emulators"}


def _node_body_problem(body: dict[str, Any]) -> str | None:
    unknown = set(body) - NODE_FIELDS
    if unknown:
        return f"unknown fields: {', '.join(sorted(unknown))}"
    tls = body.get("tls")
    if tls is not None and not isinstance(tls, dict):
        return "tls must be an object with PEM strings ca, cert and key"
    if isinstance(tls, dict) and set(tls) - {"ca", "cert", "key"}:
        return f"unknown tls fields: {', '.join(sorted(set(tls) - {'ca', 'cert', 'key'}))}"
    return None


def staff_only(view: View) -> View:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            return error(403, "builder nodes are managed by staff")
        return view(request, *args, **kwargs)

    return wrapper


@api_view("GET", "POST")
@staff_only
def nodes(request: HttpRequest, body: Any) -> HttpResponse:
    if request.method == "GET":
        return JsonResponse({"nodes": [n.to_api() for n in BuilderNode.objects.all()]})
    if problem := _node_body_problem(body):
        return error(400, problem)
    form = node_form_from_api(body)
    if not form.is_valid():
        return error(400, "invalid node", fields=form.errors.get_json_data())
    node = check_node(form.save())  # checked only now: the input was valid
    return JsonResponse(node.to_api(), status=201)


@api_view("GET", "PATCH")
@staff_only
def node_detail(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    node = _node(pk)
    if request.method == "PATCH":
        if problem := _node_body_problem(body):
            return error(400, problem)
        form = node_form_from_api(body, instance=node)
        if not form.is_valid():
            return error(400, "invalid node", fields=form.errors.get_json_data())
        node = form.save()
    return JsonResponse(node.to_api())


@api_view("POST")
@staff_only
def node_check(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    return JsonResponse(check_node(_node(pk)).to_api())


@api_view("POST")
@staff_only
def node_emulators(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    node = _node(pk)
    platforms = body.get("platforms")
    if set(body) - {"platforms"} or not isinstance(platforms, list) or not platforms:
        return error(400, 'give platforms, a list like ["linux/arm64"]')
    try:
        result = install_emulators(node, platforms)
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


def _node(pk: int) -> BuilderNode:
    try:
        return BuilderNode.objects.get(pk=pk)
    except BuilderNode.DoesNotExist:
        raise Http404("no such node") from None


# --- manual merges and registry logins ------------------------------------------------------


@api_view("POST")
def merges(request: HttpRequest, body: Any) -> HttpResponse:
    """Join images built apart into one tag; `dry_run` answers the index it would push."""
    unknown = set(body) - {"team", "target", "sources", "platforms", "dry_run"}
    if unknown:
        return error(400, f"unknown fields: {', '.join(sorted(unknown))}")
    if not isinstance(body.get("team"), str):
        return error(400, "team must be a team slug")
    team = get_team_for_user(request.user, body["team"])
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        return error(400, "dry_run must be true or false")
    try:
        with registry_logins.using_login(team.pk, body.get("target")):
            plan = manual_merge.plan(
                team, body.get("target"), body.get("sources"), body.get("platforms")
            )
            preview = {"index": plan.index(), "commands": plan.commands()}
            if dry_run:
                return JsonResponse(preview)
            record = manual_merge.push(plan, request.user)
    except InvalidValue as exc:
        return error(400, str(exc))
    except RegistryError as exc:
        return error(502, f"the registry refused the merge: {exc}")
    return JsonResponse(record.to_api() | preview, status=201)


@api_view("GET", "POST")
def credentials_list(request: HttpRequest, body: Any) -> HttpResponse:
    if request.method == "GET":
        slug = request.GET.get("team", "")
        team = _team_admin(request, slug)
        if isinstance(team, HttpResponse):
            return team
        return JsonResponse({"credentials": [c.to_api() for c in team.credentials.all()]})
    unknown = set(body) - {"team", "registry", "username", "password"}
    if unknown:
        return error(400, f"unknown fields: {', '.join(sorted(unknown))}")
    team = _team_admin(request, body.get("team"))
    if isinstance(team, HttpResponse):
        return team
    try:
        login = registry_logins.save_login(
            team, body.get("registry"), body.get("username"), body.get("password"), request.user
        )
    except InvalidValue as exc:
        return error(400, str(exc))
    return JsonResponse(login.to_api(), status=201)


@api_view("POST")
def credential_test(request: HttpRequest, body: Any, pk: int) -> HttpResponse:
    login = _login(request, pk)
    if isinstance(login, HttpResponse):
        return login
    try:
        registry_logins.test_connection(login)
    except InvalidValue as exc:  # the outbound guard refused the registry
        return error(400, str(exc))
    return JsonResponse(login.to_api())


@api_view("POST")
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
    team = _team_admin(request, login.team.slug)
    return team if isinstance(team, HttpResponse) else login
