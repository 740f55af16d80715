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

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel, ConfigDict, ValidationError

from portal import throttle
from portal.grammar import InvalidValue
from portal.sealing import SealError

MAX_BODY = 256 * 1024
View = Callable[..., HttpResponse]


class Body(BaseModel):
    """Base of request bodies: JSON types exactly (true is not "yes"), no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


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


def error(status: int, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def int_param(request: HttpRequest, name: str, default: int = 0) -> int:
    value = request.GET.get(name, "")
    if not value:
        return default
    if not (value.isascii() and value.isdecimal()) or len(value) > 18:
        raise InvalidValue(name, value, "expected a non-negative integer below 10**18")
    return int(value)


def bearer_token(authorization: str) -> str | None:
    """The raw token of an `Authorization: Bearer ...` header; None for any other header."""
    scheme, _, raw = authorization.partition(" ")
    return raw.strip() if scheme.lower() == "bearer" else None


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
    if unknown:
        return f"unknown fields: {', '.join(unknown)}"
    first = errors[0]
    # A union names the member it tried ("tags.list[str]"); the field is what the client sent.
    where = ".".join(str(part) for part in first["loc"] if "[" not in str(part)) or "body"
    if first["type"] in _PLAIN:
        return f"{where} {_PLAIN[first['type']]}"
    return f"{where}: {first['msg']}"


def parse_body(request: HttpRequest, model: type[Body] | None) -> tuple[Any, JsonResponse | None]:
    """The JSON object a POST or PATCH carries, checked against `model`, or the error answer."""
    if len(request.body) > MAX_BODY:
        return None, error(413, "request body too large")
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None, error(400, "the body must be JSON")
    if not isinstance(body, dict):
        return None, error(400, "the body must be a JSON object")
    if model is not None:
        try:
            # null is "not given": an optional field never turns into false or empty
            body = model.model_validate(body).model_dump(exclude_unset=True, exclude_none=True)
        except ValidationError as exc:
            return None, error(400, _body_problem(exc))
    return body, None


def api_view(**ops: Op) -> Callable[[View], View]:
    """Auth first (429 for a guessing address, 401 before 405), then the method, then the
    body; 404 and 409 mapped."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user, wait = throttle.token_user(
                bearer_token(request.headers.get("Authorization", "")),
                throttle.client_address(request.META.get("REMOTE_ADDR")),
            )
            if wait:
                response = error(429, throttle.TOKEN_REFUSAL.format(wait=wait))
                response["Retry-After"] = str(wait)
                return response
            if user is None:
                response = error(
                    401, "a valid API token is required (Authorization: Bearer <token>)"
                )
                response["WWW-Authenticate"] = 'Bearer realm="crossport"'
                return response
            request.user = user
            op = ops.get(request.method or "")
            if op is None:
                return error(405, f"method {request.method} not allowed", allowed=list(ops))
            body: Any = None
            if request.method in ("POST", "PATCH"):
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
