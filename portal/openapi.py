"""The OpenAPI 3.1 document of API v1, written from the routes themselves.

Every URL under `api/v1/` whose view carries `api_view` declarations (`portal.apiview.Op`)
becomes a path: its methods, summaries, query parameters, request bodies (the pydantic models
the view validates with) and answers. Nothing here lists routes by hand, so nothing can drift.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

from portal.apiview import Op, Schema

PREFIX = "api/v1/"
_CONVERTER = re.compile(r"<(?:(?P<kind>\w+):)?(?P<name>\w+)>")
_ERRORS = {
    "400": "Invalid input; nothing was changed",
    "401": "Missing or invalid token",
    "404": "Not found, or not in one of your teams",
    "405": "Method not allowed",
    "429": "Too many bad tokens from this address: wait Retry-After seconds",
}


def api_routes() -> Iterator[tuple[str, dict[str, Op]]]:
    """(route under api/v1/, its operations by method) for every declared API view."""

    def walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, dict[str, Op]]]:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith(PREFIX):
                ops = getattr(pattern.callback, "api_ops", None)
                if ops:
                    yield route[len(PREFIX) :], ops

    yield from walk(get_resolver().url_patterns, "")


def _path(route: str) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for match in _CONVERTER.finditer(route):
        kind = {"int": "integer", "id": "integer"}.get(match.group("kind") or "", "string")
        params.append({"name": "id", "in": "path", "required": True, "schema": {"type": kind}})
    return "/" + _CONVERTER.sub("{id}", route).rstrip("/"), params


def _json(schema: Any, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(op: Op, path_params: list[dict[str, Any]], schemas: dict[str, Any]) -> dict:
    if isinstance(op.answers, Schema):
        schemas[op.answers.name] = dict(op.answers.schema)
        answer = _json(_ref(op.answers.name), "OK")
    elif op.answers == "object":
        answer = _json({"type": "object"}, "OK")
    else:
        answer = {"description": "OK", "content": {op.answers: {"schema": {"type": "string"}}}}
    errors = {code: _json(_ref("Error"), text) for code, text in _ERRORS.items()}
    if op.staff:
        errors["403"] = _json(_ref("Error"), "Staff only (Django model permissions)")
    result: dict[str, Any] = {
        "summary": op.summary,
        "parameters": path_params
        + [
            {"name": p.name, "in": "query", "description": p.description, "schema": p.schema}
            for p in op.query
        ],
        "responses": {str(op.status): answer, **errors},
    }
    if op.body is not None:
        schema = op.body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[op.body.__name__] = schema
        content = {"application/json": {"schema": _ref(op.body.__name__)}}
        result["requestBody"] = {"required": True, "content": content}
    return result


def openapi_document(server_url: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "fields": {"type": "object"}},
        }
    }
    paths: dict[str, dict[str, Any]] = {}
    for route, ops in api_routes():
        path, params = _path(route)
        for method, op in ops.items():
            paths.setdefault(path, {})[method.lower()] = _operation(op, params, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Crossport API", "version": "1"},
        "servers": [{"url": server_url.rstrip("/")}],
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(schemas.items())),
        },
    }
