"""The API reference page is the OpenAPI document rendered (every operation on it), and
/api/v1/ opened in a browser explains tokens while programs keep their JSON answers."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from portal.openapi import openapi_document

pytestmark = pytest.mark.django_db

HTML = {"Accept": "text/html,application/xhtml+xml"}


def test_every_operation_of_the_document_is_on_the_page(alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    page = client.get("/api/v1/docs").content.decode()
    document = openapi_document("http://testserver/api/v1/")
    operations = [(m.upper(), p) for p, item in document["paths"].items() for m in item]
    assert len(operations) > 20
    for method, path in operations:
        assert f'data-operation="{method} {path}"' in page, (method, path)
    assert "Authorization: Bearer" in page and 'href="/tokens/"' in page
    # request bodies show their fields: registering a project needs git_url
    project = page[page.index('data-operation="POST /projects"') :]
    assert "<code>git_url</code>" in project[: project.index("</section>")]
    assert 'href="/api/v1/docs"' in client.get("/tokens/").content.decode()


def test_the_index_explains_tokens_to_a_browser_only(alice: Any, api: Any) -> None:
    browser = Client()
    browser.force_login(alice)
    page = browser.get("/api/v1/", headers=HTML)
    assert page.status_code == 200 and 'id="api-browser-hint"' in page.content.decode()
    # The session still grants nothing in the API itself.
    assert browser.get("/api/v1/projects", headers=HTML).status_code == 401
    assert browser.get("/api/v1/").status_code == 401  # a program without a token
    assert browser.get("/api/v1/").json()["error"]
    with_token = api(alice)
    answer = with_token.client.get("/api/v1/", headers={**with_token.headers, **HTML})
    assert answer.status_code == 200 and "openapi" in answer.json()
    assert Client().get("/api/v1/", headers=HTML).status_code == 200  # logged out: how to log in
