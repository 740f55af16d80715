"""Every page carries a Content-Security-Policy that allows only the portal's own scripts and
styles (the admin's few inline blocks by the request's nonce), no framing, a referrer policy and
nosniff; no template needs more (no inline script, handler, style attribute or javascript: URL).
The browser half of this is tests/portal/test_browser_csp.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from builds.models import Build, BuilderNode, BuildxBuilder
from portal.models import Project

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def directives(response: Any) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_strict(response: Any) -> None:
    csp = directives(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    for directive in ("script-src", "style-src"):
        allowed = csp.get(directive, csp["default-src"])
        assert "'unsafe-inline'" not in allowed and "'unsafe-eval'" not in allowed
        assert all(v == "'self'" or v.startswith("'nonce-") for v in allowed), allowed
    assert "connect-src" not in csp  # default-src 'self': same-origin fetch and websocket
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_the_portal_pages(alice: Any, project: Project, queued_build: Build) -> None:
    client = Client()
    assert_strict(client.get("/login/"))
    client.force_login(alice)
    for path in (
        "/",
        "/teams/alpha/",
        "/teams/alpha/manifests/",
        "/teams/alpha/merge/",
        "/tokens/",
        "/projects/new/",
        f"/projects/{project.pk}/",
        f"/projects/{project.pk}/Dockerfile/edit",
        f"/projects/{project.pk}/history",
        f"/builds/{queued_build.pk}/",
        "/no/such/page/",
    ):
        response = client.get(path)
        assert response.status_code == (404 if path.startswith("/no/") else 200), path
        assert_strict(response)


def test_the_admin_pages_get_a_nonce_for_their_inline_blocks(
    django_user_model: Any, local_node: BuilderNode, alpha: Any
) -> None:
    root = django_user_model.objects.create_superuser("root", password="root-password-1")
    builder = BuildxBuilder.objects.create(name="multi")
    client = Client()
    client.force_login(root)
    for path in (
        "/admin/",
        "/admin/builds/buildernode/",
        f"/admin/builds/buildernode/{local_node.pk}/change/",
        f"/admin/builds/buildernode/{local_node.pk}/emulators/",
        f"/admin/builds/buildxbuilder/{builder.pk}/manage/",
        f"/admin/portal/team/{alpha.pk}/change/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_strict(response)
    # Django's admin puts the request's nonce on its scripts and styles (and needs it for the
    # inline <style> its changelist writes when actions are off): the header names that nonce.
    response = client.get("/admin/builds/buildernode/")
    html = response.content.decode()
    nonces = set(re.findall(r'<(?:script|style|link)[^>]* nonce="([^"]+)"', html))
    assert len(nonces) == 1
    nonce = f"'nonce-{nonces.pop()}'"
    assert nonce in directives(response)["script-src"]
    assert nonce in directives(response)["style-src"]


INLINE = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE),
    "inline style": re.compile(r"<style\b", re.IGNORECASE),
    "event handler": re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),
    "style attribute": re.compile(r"\sstyle\s*=", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}


@pytest.mark.parametrize(
    "template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES))
)
def test_templates_need_nothing_inline(template: Path) -> None:
    text = template.read_text()
    found = [what for what, pattern in INLINE.items() if pattern.search(text)]
    assert not found, f"{template}: {found} (the policy blocks it: move it to a static file)"
