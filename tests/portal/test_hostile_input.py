"""Bad input never reaches a 500 (issue: Hardening).

The routes are the URL configuration's own (django.urls.get_resolver()): the API routes with
the methods their `api_view` declares (`view.api_ops`), the pages, the login and the portal's
own admin pages (Django's admin views are Django's to test). A route added later is attacked
as well, or fails here because its path cannot be filled: give its noun a row in `World.rows`.

Requests go through clients that do not re-raise what a view raised, so each test sees what a
user would see, and the log must not say "Internal Server Error". Every answer is below 500,
and under /api/ every error is JSON with an "error" key.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache, cached_property, partial
from types import UnionType
from typing import Any, Union, get_args, get_origin
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db.models import Q
from django.forms import BaseForm
from django.test import Client
from django.test.client import ClientHandler
from django.urls import URLPattern, URLResolver, get_resolver
from pydantic import BaseModel

import lang_plugins
from builds import credentials, webhooks
from builds.models import Build, BuilderNode, BuildxBuilder, ManifestRecord
from portal import apidocs, team_secrets
from portal.apiview import BODY_METHODS, MAX_BODY
from portal.forms import OPTION_PREFIX
from portal.models import ApiToken, Project

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
READS_BODY = BODY_METHODS
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
PARAM = re.compile(r"<(?:\w+:)?\w+>")  # <id:pk>, <slug:slug>


@dataclass(frozen=True)
class Route:
    route: str  # as declared, e.g. "api/v1/projects/<id:pk>/builds"
    view: Any

    @property
    def ops(self) -> Mapping[str, Any]:
        return getattr(self.view, "api_ops", {})

    @property
    def catch_all(self) -> bool:
        return self.route.startswith("^")

    def __str__(self) -> str:
        return "/" + self.route


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[Route]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield Route(route, pattern.callback)


def _ours(route: Route) -> bool:
    return not (route.route.startswith("admin/") and route.view.__module__.startswith("django."))


ROUTES = [route for route in _walk(get_resolver().url_patterns) if _ours(route)]
API = [
    route
    for route in ROUTES
    if route.route.startswith(("api/", "^api/")) and route.route != apidocs.ROUTE
]
PAGES = [route for route in ROUTES if route not in API]


@dataclass
class World:
    """Alice's own rows, named by the path segment before a route's parameter (`<id:pk>`
    alone could be any row: after "projects/" it is her project, after "builds/" her build)."""

    rows: dict[str, str]
    user: Any
    token: str
    revoked: str

    def path(self, route: Route, value: str | None = None) -> str:
        """The route's path with each parameter naming a row of alice's (or `value`)."""
        if route.catch_all:  # re_path(r"^api/"): any path below it
            if not re.fullmatch(r"\^[\w/]+", route.route):
                pytest.fail(f"{route}: a regular expression World.path cannot fill yet")
            return "/" + route.route[1:] + "v1/no-such-route"

        def fill(match: re.Match[str]) -> str:
            if value is not None:
                return value
            noun = route.route[: match.start()].rstrip("/").rpartition("/")[2]
            if noun not in self.rows:
                pytest.fail(f"{route}: no row for <{match[0][1:-1]}> after {noun!r}: add one")
            return self.rows[noun]

        return "/" + PARAM.sub(fill, route.route)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @cached_property
    def api(self) -> Client:
        # API clients send no CSRF token: a view that forgets its exemption answers 403 here.
        return _client(csrf=True)

    @cached_property
    def page(self) -> Client:
        return self.browser()

    def browser(self, csrf: bool = False) -> Client:
        client = _client(csrf)
        client.force_login(self.user)
        return client


@cache
def _handler(csrf: bool) -> ClientHandler:
    # Shared: a new one loads the middleware again, and WhiteNoise reads every static file.
    return ClientHandler(enforce_csrf_checks=csrf)


def _client(csrf: bool) -> Client:
    """A client that does not re-raise what a view raised: the test sees what a user sees."""
    client = Client(raise_request_exception=False)
    client.handler = _handler(csrf)
    return client


@pytest.fixture(autouse=True)
def _quick_and_offline(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
    # Whatever slips through to git or docker fails at once and reaches nothing.
    settings.PORTAL_DOCKER_CLI = settings.PORTAL_GIT_CLI = "false"


@pytest.fixture(autouse=True)
def _no_internal_server_error(caplog: Any) -> Iterator[None]:
    yield
    logged = [r.getMessage() for r in caplog.records if "Internal Server Error" in r.getMessage()]
    assert not logged, logged[:3]


@pytest.fixture
def world(alice: Any, project: Project, local_node: BuilderNode) -> World:
    # Staff with the node and builder permissions, so the node API and the portal's admin
    # pages run their code instead of stopping at 403; teams still come from memberships.
    alice.is_staff = True
    alice.save()
    alice.user_permissions.set(
        Permission.objects.filter(
            Q(codename__endswith="_buildernode") | Q(codename__endswith="_buildxbuilder")
        )
    )
    local_node.endpoint = "unix:///nonexistent/crossport-hostile.sock"  # never the real engine
    local_node.save()
    record = ManifestRecord.objects.create(
        team=project.team,
        project=project,
        reference=f"{project.image}:v1",
        digest="sha256:" + "c" * 64,
        platforms={"linux/amd64": "sha256:" + "1" * 64},
        pushed_by=alice,
    )
    login = credentials.save_login(project.team, "localhost:5000", "robot", "secret", alice)
    secret = team_secrets.create(project.team, "npmrc", "token", None, alice)
    builder = BuildxBuilder.objects.create(name="hostile")
    builder.nodes.add(local_node)
    build = Build.objects.create(project=project, requested_by=alice, platforms=project.platforms)
    victim, _ = ApiToken.issue(alice, "victim")
    revoked, revoked_raw = ApiToken.issue(alice, "revoked")
    revoked.revoke()
    _, raw = ApiToken.issue(alice, "attacker")
    hook, _ = webhooks.rotate(project, alice)
    node = str(local_node.pk)
    return World(
        rows={
            "teams": project.team.slug,
            "projects": str(project.pk),
            "builds": str(build.pk),
            "manifests": str(record.pk),
            "credentials": str(login.pk),
            "secrets": secret.name,
            "nodes": node,
            "tokens": str(victim.pk),
            "buildernode": node,
            "buildxbuilder": str(builder.pk),
            "builders": builder.name,
            "hooks": hook.key,
        },
        user=alice,
        token=raw,
        revoked=revoked_raw,
    )


def seen(response: Any, method: str, path: str) -> Any:
    """What every answer must be: below 500; under /api/, an error is JSON with "error"."""
    where = f"{method} {path[:150]} -> {response.status_code}"
    assert response.status_code < 500, where
    if path.startswith("/api/") and response.status_code >= 400:
        assert response["Content-Type"].startswith(JSON), f"{where}: {response['Content-Type']}"
        if method != "HEAD":  # a HEAD answer has no body
            assert "error" in response.json(), where
    return response


def send(
    client: Client,
    method: str,
    path: str,
    body: bytes | str = b"",
    content_type: str = JSON,
    headers: Mapping[str, str] | None = None,
) -> Any:
    answer = client.generic(method, path, body, content_type=content_type, headers=headers)
    return seen(answer, method, path)


def survey(attempts: Mapping[str, Callable[[], object]]) -> None:
    """Make every attempt, then fail once naming each that failed (not only the first)."""
    failed = {}
    for name, attempt in attempts.items():
        try:
            attempt()
        except AssertionError as exc:
            failed[name] = str(exc).splitlines()[0][:200]
    assert not failed, failed


# --- The walk ---------------------------------------------------------------------------------


def test_the_walk_finds_the_api_and_the_pages(world: World) -> None:
    assert len(API) >= 20 and len(PAGES) >= 20
    assert {"login/", "projects/new/", "admin/builds/buildernode/<int:pk>/emulators/"} <= {
        r.route for r in PAGES
    }
    for route in API:
        assert route.ops or route.catch_all, f"{route} is served without api_view"
    for route in ROUTES:
        assert "<" not in world.path(route)


# --- API: token, method ---------------------------------------------------------------------


def _no_token(world: World) -> dict[str, dict[str, str]]:
    return {
        "missing": {},
        "basic": {"Authorization": "Basic YWxpY2U6YWxpY2U="},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "huge": {"Authorization": "Bearer cp_" + "x" * 10_000},
        "revoked": {"Authorization": f"Bearer {world.revoked}"},
    }


@pytest.mark.parametrize(("route", "method"), [(r, m) for r in API for m in METHODS], ids=str)
def test_api_without_a_valid_token_is_401_before_anything(
    world: World, route: Route, method: str
) -> None:
    path = world.path(route)
    for name, headers in _no_token(world).items():
        assert send(world.api, method, path, b"{", headers=headers).status_code == 401, name


UNDECLARED = [(r, m) for r in API if not r.catch_all for m in METHODS if m not in r.ops]


@pytest.mark.parametrize(("route", "method"), UNDECLARED, ids=str)
def test_api_undeclared_method_is_405(world: World, route: Route, method: str) -> None:
    answer = send(world.api, method, world.path(route), b"{}", headers=world.auth)
    assert answer.status_code == 405
    if method != "HEAD":
        assert answer.json()["allowed"] == list(route.ops)


# --- API: bodies ----------------------------------------------------------------------------


def _padded(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    return b'{"pad": "' + b"a" * (size - 11) + b'"}'


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


BODIES: dict[str, tuple[str, bytes, int | None]] = {  # content type, body, status when read
    "over_api_limit": (JSON, _padded(MAX_BODY + 1), 413),
    "over_django_limit": (JSON, _padded(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1), 413),
    "malformed_json": (JSON, b'{"team": ', 400),
    "nested_100k_arrays": (JSON, _nested(100_000), 400),
    "nested_50k_objects": (JSON, b'{"":' * 50_000 + b"0" + b"}" * 50_000, 400),
    "nested_100k_in_a_field": (JSON, b'{"options": ' + _nested(100_000) + b"}", 400),
    "nested_900_in_a_field": (JSON, b'{"options": {"a": ' + _nested(900) + b"}}", 400),
    "non_utf8": (JSON, b'{"team": "\xff\xfe"}', 400),
    "not_an_object": (JSON, b'["team"]', 400),
    "null": (JSON, b"null", 400),
    "form_encoded": (FORM, b"team=alpha&dry_run=no", 400),
    "number_of_5000_digits": (JSON, b'{"max_builds": 1' + b"0" * 5000 + b"}", 400),
    "many_unknown_fields": (JSON, json.dumps({f"f{i}": 0 for i in range(20_000)}).encode(), 400),
    "utf16_json": (JSON, '{"team": "alpha"}'.encode("utf-16"), None),
    "empty": (JSON, b"", None),
}
DECLARED = [(r, m) for r in API for m in r.ops]


@pytest.mark.parametrize(
    ("route", "method", "attack"),
    [(r, m, a) for r, m in DECLARED for a in BODIES],
    ids=str,
)
def test_api_hostile_bodies_are_4xx(world: World, route: Route, method: str, attack: str) -> None:
    content_type, body, status = BODIES[attack]
    answer = send(world.api, method, world.path(route), body, content_type, world.auth)
    if method in READS_BODY and status is not None:
        assert answer.status_code == status, answer.content[:300]
        assert len(answer.content) < 2000  # the answer does not echo the attack


# What each JSON type looks like; a field gets every type its annotation does not admit.
SAMPLES: dict[str, Any] = {
    "string": "x",
    "array": ["x"],
    "object": {},
    "integer": 1,
    "number": 1.5,
    "boolean": True,
}
KINDS = {str: "string", list: "array", dict: "object", int: "integer", float: "number"}
KINDS |= {bool: "boolean", type(None): "null"}


def _members(annotation: Any) -> list[Any]:
    """`str | list[str] | None` -> [str, list[str], None]."""
    if get_origin(annotation) in (Union, UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _kind(annotation: Any) -> str:
    origin = get_origin(annotation) or annotation
    if isinstance(origin, type) and issubclass(origin, BaseModel):
        return "object"
    return KINDS.get(origin, "any")


@dataclass(frozen=True)
class Field:
    route: Route
    method: str
    name: str  # dotted: "tls.ca"
    annotation: Any
    required: bool

    @property
    def kinds(self) -> set[str]:
        return {_kind(member) for member in _members(self.annotation)}

    def __str__(self) -> str:
        return f"{self.method} {self.route} {self.name}"


def _fields() -> list[Field]:
    """Every field of every body model, and the fields of the models inside them."""
    found = []
    for route, method in DECLARED:
        model = route.ops[method].body
        for name, info in (model.model_fields if model else {}).items():
            found.append(Field(route, method, name, info.annotation, info.is_required()))
            for member in _members(info.annotation):
                if isinstance(member, type) and issubclass(member, BaseModel):
                    for inner, inner_info in member.model_fields.items():
                        dotted = f"{name}.{inner}"
                        found.append(Field(route, method, dotted, inner_info.annotation, False))
    return found


FIELDS = _fields()


def _valid(route: Route, method: str) -> dict[str, Any]:
    """A body of the right JSON types for the route's required fields."""
    return {
        f.name: SAMPLES[next(k for k in SAMPLES if k in f.kinds)]
        for f in FIELDS
        if (f.route, f.method) == (route, method) and f.required
    }


def _body(field: Field, value: Any) -> dict[str, Any]:
    """A body of the right JSON types for the required fields, with `field` set to `value`."""
    body = _valid(field.route, field.method)
    outer, _, inner = field.name.partition(".")
    body[outer] = {inner: value} if inner else value
    return body


def _wrong(field: Field) -> list[Any]:
    """A value of each JSON type the field does not admit, and one wrong item inside it."""
    if "any" in field.kinds:
        return []
    wrong: list[Any] = [sample for kind, sample in SAMPLES.items() if kind not in field.kinds]
    if field.required:
        wrong.append(None)
    for member in _members(field.annotation):
        if get_origin(member) in (list, dict):
            item = _kind(get_args(member)[-1])
            if item != "any":
                bad = next(sample for kind, sample in SAMPLES.items() if kind != item)
                wrong.append([bad] if get_origin(member) is list else {"k": bad})
    return wrong


@pytest.mark.parametrize("field", FIELDS, ids=str)
def test_api_every_field_refuses_every_wrong_json_type(world: World, field: Field) -> None:
    path = world.path(field.route)
    for value in _wrong(field):
        body = json.dumps(_body(field, value))
        answer = send(world.api, field.method, path, body, headers=world.auth)
        assert answer.status_code == 400, (value, answer.json())
        assert answer.json()["error"].startswith(field.name), (value, answer.json())


BOOLEANS = [f for f in FIELDS if f.kinds - {"null"} == {"boolean"}]
WORDS = ["no", "off", "0", "false", "False", "true", "yes", "", 0, 1]


@pytest.mark.parametrize(
    ("field", "word"),
    [(f, w) for f in BOOLEANS for w in WORDS],
    ids=lambda v: str(v) if isinstance(v, Field) else repr(v),  # "0" and 0 apart
)
def test_api_booleans_are_json_true_or_false_only(world: World, field: Field, word: Any) -> None:
    body = json.dumps(_body(field, word))
    answer = send(world.api, field.method, world.path(field.route), body, headers=world.auth)
    assert answer.status_code == 400
    assert answer.json()["error"] == f"{field.name} must be true or false"


BAD_TEXT = {"nul": "a\x00b", "lone_surrogate": "a\ud800b"}


def _text_in(field: Field, text: str) -> Any:
    """`text` where the field takes text: itself, a list item, or a key and value."""
    for member in _members(field.annotation):
        if member is str:
            return text
        if get_origin(member) is list and get_args(member) == (str,):
            return [text]
        if get_origin(member) is dict and get_args(member)[0] is str:
            return {text: "x"}
    return None


TEXTS = [f for f in FIELDS if _text_in(f, "x") is not None]


@pytest.mark.parametrize(("field", "text"), [(f, t) for f in TEXTS for t in BAD_TEXT], ids=str)
def test_api_text_no_database_stores_is_400(world: World, field: Field, text: str) -> None:
    """PostgreSQL refuses NUL in text and no database encodes a lone surrogate."""
    body = json.dumps(_body(field, _text_in(field, BAD_TEXT[text])))
    answer = send(world.api, field.method, world.path(field.route), body, headers=world.auth)
    assert answer.status_code == 400, answer.json()


# --- Paths and query strings ----------------------------------------------------------------

BAD_IDS = {
    "18_digits": "9" * 18,
    "over_bigint": "9223372036854775808",
    "23_digits": "99999999999999999999999",
    "negative": "-1",
    "word": "abc",
    "nul": "%00",
    "non_utf8": "%FF%FE",
    "long": "x" * 5000,
}
WITH_PARAMS = [r for r in ROUTES if PARAM.search(r.route)]


def _not_found(world: World, route: Route, path: str) -> None:
    if route in API:
        for method in route.ops:
            body = json.dumps(_valid(route, method))
            answer = send(world.api, method, path, body, headers=world.auth)
            assert answer.status_code == 404, method
        return
    for method in ("GET", "POST"):
        answer = send(world.page, method, path, b"", FORM)
        # The admin sends a path it does not serve on to its index or the object's page.
        assert answer.status_code in (404, 405, 302), method


@pytest.mark.parametrize("route", WITH_PARAMS, ids=str)
def test_bad_path_parameters_are_404(world: World, route: Route) -> None:
    survey(
        {
            bad: partial(_not_found, world, route, world.path(route, value))
            for bad, value in BAD_IDS.items()
        }
    )


QUERY = {
    "huge": "99999999999999999999999",
    "negative": "-1",
    "non_numeric": "abc",
    "empty": "",
    "nul": "%00",
    "non_utf8": "%FF%FE",
    "long": "x" * 5000,
    "far_date": "9999-12-31",
    "bad_date": "2026-13-45",
}


def _reads_query(route: Route) -> bool:
    if route in API:
        return any(op.query for op in route.ops.values())
    return "request.GET" in inspect.getsource(sys.modules[route.view.__module__])


def _query_names() -> list[str]:
    """Names the views read from the query string, and those the API declares."""
    names = {p.name for r in API for op in r.ops.values() for p in op.query}
    for module in {sys.modules[r.view.__module__] for r in ROUTES}:
        source = inspect.getsource(module)
        names |= set(re.findall(r'GET(?:\.get)?[(\[]"(\w+)"', source))
        names |= set(re.findall(r'"(\w+)" in request\.GET', source))
    return sorted(names | {"page"})


QUERY_NAMES = _query_names()
GETS = [r for r in ROUTES if r not in API or "GET" in r.ops]


@pytest.mark.parametrize("route", GETS, ids=str)
def test_hostile_query_strings_are_not_500(world: World, route: Route) -> None:
    """Each value in every name at once, twice over; where the view reads the query, also in
    each name alone (a refusal of one must not hide another)."""
    path = world.path(route)
    client, headers = (world.api, world.auth) if route in API else (world.page, None)
    attempts = {}
    for value, text in QUERY.items():
        alone = {name: f"{name}={text}" for name in QUERY_NAMES}
        # Twice over: a plain value first, so request.GET.get() reads the hostile one.
        queries = {"all": "&".join([*(f"{n}=1" for n in QUERY_NAMES), *alone.values()])}
        if _reads_query(route):
            queries |= alone
        for name, query in queries.items():
            attempts[f"{value} in {name}"] = partial(
                send, client, "GET", f"{path}?{query}", b"", JSON, headers
            )
    survey(attempts)


def _toggled(route: Route, world: World) -> str:
    path = world.path(route)
    return path[:-1] if path.endswith("/") else path + "/"


UNKNOWN = [
    "/api/v1/no-such-route",
    "/api/v1/no-such-route/",
    "/api/v2/",
    "/api/v1/projects/1/no-such-route",
    "/api/v1//projects",
    "/api/v1/%FF",
    "/api/v1/%00",
]


@pytest.mark.parametrize("path", UNKNOWN + [r for r in API if not r.catch_all], ids=str)
def test_unknown_api_paths_are_json_404(world: World, path: str | Route) -> None:
    """Fixed unknown paths, and every route with its trailing slash toggled."""
    url = _toggled(path, world) if isinstance(path, Route) else path
    for method in METHODS:
        assert send(world.api, method, url, headers=world.auth).status_code == 404, method
        assert send(world.api, method, url).status_code == 401, method


# --- Pages: form posts and methods ----------------------------------------------------------


def _posted_names() -> list[str]:
    """What the pages read from a form: the fields of the forms their modules use, what they
    read from request.POST themselves, and every plugin's option fields."""
    names: set[str] = set()
    for module in {sys.modules[r.view.__module__] for r in PAGES}:
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseForm):
                names |= set(getattr(value, "base_fields", {}))
        source = inspect.getsource(module)
        names |= set(re.findall(r'POST\.get(?:list)?\(\s*"(\w+)"', source))
        names |= set(re.findall(r'"(\w+)" in request\.POST', source))
        names |= set(re.findall(r'posted_pk\(request, "(\w+)"\)', source))
    for plugin in lang_plugins.all_plugins().values():
        names |= {OPTION_PREFIX + option.name for option in plugin.options}
    return sorted(names)


POSTED = _posted_names()
GARBAGE = {
    "nul": "a\x00b",
    "control": "\x01\x1b[31m\r\n\t\x7f",
    "huge_number": "9" * 30,
    "negative": "-1",
    "template": "{{ 7*7 }}{% debug %}${x}%(x)s",
    "markup": "<script>alert(1)</script>\"'",
    "path": "../../../../etc/passwd",
    "unicode": "\u202eevil\ufeff\U0001f600",
    "oversized": "A" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (2 * len(POSTED))),
}


def _form(value: str, names: list[str] = POSTED) -> str:
    return "&".join(f"{name}={quote(value)}" for name in names)


DJANGO_REFUSES = {  # what Django refuses when the form is read, whoever reads it first
    "over_django_limit": (b"x=" + b"a" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE, 413),
    "too_many_fields": ("&".join(f"f{i}=1" for i in range(2000)).encode(), 400),
}
MULTIPART = "multipart/form-data; boundary=zzz"
ENCODINGS: dict[str, tuple[str, bytes]] = {  # content type, body
    **{name: (FORM, body) for name, (body, _) in DJANGO_REFUSES.items()},
    "non_utf8": (FORM, _form("%FF%FE").replace("%25", "%").encode()),
    "surrogate_bytes": (FORM, _form("%ED%A0%80").replace("%25", "%").encode()),
    "raw_latin1": (FORM, _form("x").encode() + b"&team=\xe9t\xe9"),
    "utf16_declared": (f"{FORM}; charset=utf-16", _form("alpha").encode("utf-16")),
    "unknown_charset": (f"{FORM}; charset=klingon", _form("alpha").encode()),
    "json_to_a_page": (JSON, json.dumps(dict.fromkeys(POSTED, "x")).encode()),
    "multipart_without_boundary": ("multipart/form-data", b"--zzz\r\n\r\nx"),
    "multipart_unterminated": (
        MULTIPART,
        b'--zzz\r\nContent-Disposition: form-data; name="team"\r\n\r\nalpha',
    ),
    "multipart_files": (
        MULTIPART,
        b"".join(
            b'--zzz\r\nContent-Disposition: form-data; name="%s"; filename="../\xff.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\nx\r\n" % name.encode()
            for name in POSTED
        )
        + b"--zzz--\r\n",
    ),
    "no_content_type": ("", _form("x").encode()),
}


@pytest.mark.parametrize("route", PAGES, ids=str)
def test_page_garbage_in_every_field_is_not_500(world: World, route: Route) -> None:
    """Each garbage value in every field a page reads, to the page and its htmx partials."""
    path = world.path(route)
    survey(
        {
            f"{name}{' htmx' if htmx else ''}": partial(
                send, world.page, "POST", path, _form(value), FORM, htmx
            )
            for name, value in GARBAGE.items()
            for htmx in ({}, {"HX-Request": "true"})
        }
    )


@pytest.mark.parametrize("route", PAGES, ids=str)
def test_page_odd_form_encodings_are_not_500(world: World, route: Route) -> None:
    path = world.path(route)
    survey(
        {
            name: partial(send, world.page, "POST", path, body, content_type)
            for name, (content_type, body) in ENCODINGS.items()
        }
    )


@pytest.mark.parametrize(
    ("route", "attack"),
    # A CSRF-exempt view (the git hosts' webhook URL) is not read by the middleware first.
    [(r, a) for r in PAGES for a in DJANGO_REFUSES if not getattr(r.view, "csrf_exempt", False)],
    ids=str,
)
def test_page_form_django_refuses_is_4xx_in_the_csrf_check_already(
    world: World, route: Route, attack: str
) -> None:
    """With CSRF checks on, as in production, the middleware reads every posted form first."""
    client = world.browser(csrf=True)
    client.cookies["csrftoken"] = "a" * 32
    body, status = DJANGO_REFUSES[attack]
    assert send(client, "POST", world.path(route), body, FORM).status_code == status


@pytest.mark.parametrize(
    ("route", "method"),
    [(r, m) for r in PAGES for m in METHODS if m not in ("GET", "POST")],
    ids=str,
)
def test_page_odd_methods_are_not_500(world: World, route: Route, method: str) -> None:
    send(world.page, method, world.path(route), _form("x"), FORM)
