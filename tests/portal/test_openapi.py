"""The OpenAPI document is written from the routes: every /api/v1/ route is in it, as served."""

from __future__ import annotations

import re
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

from portal import apidocs

METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


def served_routes() -> list[str]:
    """Every URL pattern under api/v1/, found by walking the URL configuration itself."""
    found = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif (
                isinstance(pattern, URLPattern)
                and route.startswith("api/v1/")
                and route != apidocs.ROUTE
            ):
                found.append(route)

    walk(get_resolver().url_patterns, "")
    return found


def as_doc_path(route: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?\w+>", "{id}", route[len("api/v1/") :]).rstrip("/")


def test_the_index_links_the_document(alice: Any, api: Any) -> None:
    index = api(alice).get("/api/v1/").json()
    assert index["openapi"] == "http://testserver/api/v1/openapi.json"
    doc = api(alice).get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert index["paths"] == {path: sorted(ops) for path, ops in doc["paths"].items()}
    assert index["paths"]["/builds/{id}/log"] == ["get"]


def test_every_served_route_and_method_is_documented(alice: Any, api: Any) -> None:
    client = api(alice)
    doc = client.get("/api/v1/openapi.json").json()
    routes = served_routes()
    assert len(routes) >= 18  # detect, merges, credentials and nodes included
    for route in routes:
        path = as_doc_path(route)
        assert path in doc["paths"], f"{route} is served but not documented"
        url = "/" + re.sub(r"<(?:\w+:)?\w+>", "1", route)
        # What the route answers to (405 lists it) is exactly what the document says.
        answer = client.client.generic("OPTIONS", url, headers=client.headers)
        assert answer.status_code == 405, route
        allowed = answer.json()["allowed"]
        assert sorted(m.lower() for m in allowed) == sorted(doc["paths"][path]), route
    for needed in ("/detect", "/merges", "/credentials", "/credentials/{id}/test", "/nodes/{id}"):
        assert needed in doc["paths"]


def test_request_bodies_are_the_models_the_views_validate_with(alice: Any, api: Any) -> None:
    doc = api(alice).get("/api/v1/openapi.json").json()
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/projects/{id}/builds"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BuildIn"}
    assert schemas["BuildIn"]["additionalProperties"] is False
    assert schemas["NodeIn"]["properties"]["enabled"]["anyOf"][0] == {"type": "boolean"}
    assert set(schemas["MergeIn"]["required"]) == {"team", "target", "sources"}
    # The schema is what is enforced: a field it does not name is refused.
    response = api(alice).post(
        "/api/v1/merges", {"team": "alpha", "target": "x", "sources": [], "x": 1}
    )
    assert response.status_code == 400 and response.json()["error"] == "unknown fields: x"
