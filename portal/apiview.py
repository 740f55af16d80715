"""The API's one decorator: bearer-token auth, methods, JSON bodies checked against the schema
declared beside each view, and the errors every view shares.

A view says what it accepts and answers once, next to its code:

    @api_view(POST=Op("Queue a build", body=BuildIn, status=201, answers=BUILD))
    def project_builds(request, body, pk): ...

`body` is a pydantic model (strict types, unknown fields refused); the view gets the fields the
client sent as a dict. `portal.openapi` reads these declarations to write the OpenAPI document,
so a route cannot be served without being described.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel, ConfigDict, ValidationError

from portal import throttle
from portal.errors import error, too_large
from portal.grammar import InvalidValue
from portal.ids import parse_id
from portal.sealing import SealError

MAX_BODY = 256 * 1024
# Bodies are at most three levels deep (a node's tls object); far deeper JSON is no request of
# ours, and code that recurses over it would fail with RecursionError, a 500.
MAX_DEPTH = 16
View = Callable[..., HttpResponse]


class Body(BaseModel):
    """Base of request bodies: JSON types exactly (true is not "yes"), no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


class NoBody(Body):
    """What a route that declares no body takes: an empty object, or nothing."""


@dataclass(frozen=True)
class Schema:
    """A named response shape for the OpenAPI document."""

    name: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})


def shape(**fields: str | Mapping[str, Any]) -> dict[str, Any]:
    """An object schema, briefly: `shape(id="integer", node="string?", tags=["string"])`:
    a JSON type name ("?" admits null), or a schema as it is."""

    def one(spec: str | Mapping[str, Any]) -> Mapping[str, Any]:
        if not isinstance(spec, str):
            return spec
        name = spec.rstrip("?")
        return {"type": [name, "null"]} if spec.endswith("?") else {"type": name}

    return {"type": "object", "properties": {name: one(spec) for name, spec in fields.items()}}


def array_of(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": {"type": spec} if isinstance(spec, str) else spec}


@dataclass(frozen=True)
class Param:
    name: str
    description: str = ""
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Op:
    """One method of a route: what it does, takes and answers."""

    summary: str
    body: type[Body] | None = None
    status: int = 200
    answers: Schema | str = "object"  # a Schema, or a media type such as "text/plain"
    query: tuple[Param, ...] = ()
    staff: bool = False  # documented only; views check their own permissions


def int_param(request: HttpRequest, name: str, default: int = 0) -> int:
    value = request.GET.get(name, "")
    if not value:
        return default
    number = parse_id(value)
    if number is None:
        raise InvalidValue(name, value, "expected a non-negative integer below 10**18")
    return number


def bearer_token(authorization: str) -> str | None:
    """The raw token of an `Authorization: Bearer ...` header; None for any other header."""
    scheme, _, raw = authorization.partition(" ")
    return raw.strip() if scheme.lower() == "bearer" else None


def unauthorized() -> JsonResponse:
    response = error(401, "a valid API token is required (Authorization: Bearer <token>)")
    response["WWW-Authenticate"] = 'Bearer realm="crossport"'
    return response


def authenticate(request: HttpRequest) -> tuple[Any, JsonResponse | None]:
    """The user a bearer token names, or the answer: 429 while the client's address is locked
    out for sending bad tokens (portal/throttle.py), else 401."""
    user, wait = throttle.token_user(
        bearer_token(request.headers.get("Authorization", "")),
        throttle.client_address(request.META.get("REMOTE_ADDR")),
    )
    if wait:
        response = error(429, throttle.TOKEN_REFUSAL.format(wait=wait))
        response["Retry-After"] = str(wait)
        return None, response
    if user is None:
        return None, unauthorized()
    return user, None


_PLAIN = {
    "missing": "is required",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
}


def _body_problem(exc: ValidationError) -> str:
    errors = exc.errors()
    unknown = sorted(".".join(map(str, e["loc"])) for e in errors if e["type"] == "extra_forbidden")
    if unknown:  # named briefly: the answer does not echo a body of made-up names
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        return f"unknown fields: {', '.join(name[:40] for name in unknown[:10])}{more}"
    first = errors[0]
    # A union names the member it tried ("tags.list[str]"); the field is what the client sent.
    where = ".".join(str(part) for part in first["loc"] if "[" not in str(part)) or "body"
    if first["type"] in _PLAIN:
        return f"{where} {_PLAIN[first['type']]}"
    return f"{where}: {first['msg']}"


def _unfit(body: object) -> str | None:
    """Why this JSON cannot be taken whatever the route: nested deeper than MAX_DEPTH, or text
    no database stores (PostgreSQL refuses NUL; a lone surrogate has no UTF-8 encoding)."""
    stack: list[tuple[object, str, int]] = [(body, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            if "\x00" in value or not _encodes(value):
                return f"{where or 'a field name'} may not contain NUL or lone surrogates"
        elif isinstance(value, dict | list):
            if depth == MAX_DEPTH:
                return "the body is nested too deeply"
            pairs = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in pairs:
                stack.append((item, f"{where}.{key}".lstrip(".")[:80], depth + 1))
                if isinstance(key, str):  # a name is text too
                    stack.append((key, where, depth + 1))
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_body(request: HttpRequest, model: type[Body] | None) -> tuple[Any, HttpResponse | None]:
    """The JSON object a POST, PATCH or PUT carries, checked against `model`, or the answer."""
    try:
        raw = request.body
    except RequestDataTooBig:  # over Django's own limit, refused before reading
        return None, too_large(request)
    if len(raw) > MAX_BODY:
        return None, too_large(request)
    try:
        body = json.loads(raw or b"{}")
    except RecursionError:  # json's decoder recurses once per level
        return None, error(400, "the body is nested too deeply")
    except ValueError:
        return None, error(400, "the body must be JSON")
    if not isinstance(body, dict):
        return None, error(400, "the body must be a JSON object")
    if problem := _unfit(body):
        return None, error(400, problem)
    try:
        # null is "not given": an optional field never turns into false or empty
        body = (model or NoBody).model_validate(body)
    except ValidationError as exc:
        return None, error(400, _body_problem(exc))
    return body.model_dump(exclude_unset=True, exclude_none=True), None


def api_view(**ops: Op) -> Callable[[View], View]:
    """Auth first (429 for a guessing address, 401 before 405), then the method, then the
    body; 404 and 409 mapped."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user, refusal = authenticate(request)
            if refusal is not None:
                return refusal
            request.user = user
            op = ops.get(request.method or "")
            if op is None:
                return error(405, f"method {request.method} not allowed", allowed=list(ops))
            body: Any = None
            if request.method in ("POST", "PATCH", "PUT"):
                body, problem = parse_body(request, op.body)
                if problem is not None:
                    return problem
            try:
                return view(request, body, *args, **kwargs)
            except Http404 as exc:
                return error(404, str(exc) or "not found")
            except SealError as exc:  # a saved secret the current key cannot open
                return error(409, str(exc))

        wrapper.api_ops = ops  # type: ignore[attr-defined]
        return wrapper

    return decorate
