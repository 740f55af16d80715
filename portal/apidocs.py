"""The API's reference page, rendered on the server from the same OpenAPI document that
`/api/v1/openapi.json` serves (so the page cannot drift from the API), and what `/api/v1/`
answers a browser: the same page, which says how to get and send a token."""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from portal.openapi import openapi_document

# The one page under api/v1/: HTML for people (the tests that walk the API leave it out).
ROUTE = "api/v1/docs"
METHODS = ("get", "post", "put", "patch", "delete")
ANCHOR = re.compile(r"[^a-z0-9]+")


def wants_page(request: HttpRequest) -> bool:
    """A browser opening the URL: asks for HTML and sends no bearer token."""
    return "text/html" in request.headers.get("Accept", "") and not request.headers.get(
        "Authorization"
    )


def _schema(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """A body's schema, its $ref resolved: name and (field, type, required, description)."""
    name = schema.get("$ref", "").rpartition("/")[2]
    body = schemas.get(name, schema)
    required = set(body.get("required", []))
    fields = [
        {
            "name": field,
            "type": spec.get("type")
            or " or ".join(str(option.get("type", "")) for option in spec.get("anyOf", [])),
            "required": field in required,
            "description": spec.get("description", ""),
        }
        for field, spec in body.get("properties", {}).items()
    ]
    return {"name": name or body.get("type", ""), "fields": fields}


def operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    schemas = document.get("components", {}).get("schemas", {})
    found = []
    for path, item in sorted(document["paths"].items()):
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            found.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "anchor": method + "-" + ANCHOR.sub("-", path).strip("-"),
                    "summary": op.get("summary", ""),
                    "parameters": op.get("parameters", []),
                    "body": _schema(body["schema"], schemas) if body else None,
                    "responses": sorted(op.get("responses", {}).items()),
                }
            )
    return found


def docs(request: HttpRequest) -> HttpResponse:
    base = request.build_absolute_uri(reverse("api-index"))
    document = openapi_document(base)
    return render(
        request,
        "portal/api_docs.html",
        {
            "base": base,
            "title": document["info"].get("title", "Crossport API"),
            "operations": operations(document),
            "from_index": request.path == reverse("api-index"),
        },
    )
