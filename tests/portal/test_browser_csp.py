"""The pages work in a real browser under the Content-Security-Policy: Debian's chromium walks
the login page, home, team, project, build (its live-log websocket), tokens and the admin, and
any refusal by the policy or script error fails the test. No Docker needed: the portal runs as
`manage.py serve --no-worker` on the test database (tests/browser.py).

Skips without chromium, except with CI=true, where it fails instead. Screenshots (1280 px wide)
land in the test's tmp_path for a human to look at."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from builds.models import Build, BuilderNode, BuildxBuilder
from portal.models import Project, Team

pytestmark = pytest.mark.django_db(transaction=True)  # the server process reads what we write


@pytest.fixture
def site(alice: Any, bob: Any, project: Project, queued_build: Build) -> dict[str, Any]:
    """What the pages show, written before the browser starts (Playwright's sync API keeps an
    event loop in this thread, where Django refuses database calls)."""
    alice.is_staff = alice.is_superuser = True
    alice.save()
    return {
        "project": project,
        "build": queued_build,
        "node": BuilderNode.objects.get(name="local"),
        "builder": BuildxBuilder.objects.create(name="multi"),
        "team": Team.objects.get(slug="alpha"),
    }


def test_the_pages_work_under_the_policy(
    site: dict[str, Any], portal_url: str, chromium: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    problems: list[str] = []
    frames: list[str] = []
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.on(
        "console",
        lambda msg: "Content Security Policy" in msg.text and problems.append(msg.text),
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: frames.append(frame)))

    def visit(path: str, name: str) -> Any:
        response = page.goto(portal_url + path)
        assert response is not None and response.ok, (path, response and response.status)
        policy = response.header_value("content-security-policy") or ""
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        page.wait_for_load_state("networkidle")
        page.screenshot(path=tmp_path / f"{name}.png", full_page=True)
        assert not problems, (path, problems)
        return response

    visit("/login/", "login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "alice-password-1")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Projects")

    visit("/", "home")
    visit("/tokens/", "tokens")
    page.fill("input[name=name]", "ci")
    page.click("text=Create token")
    expect(page.locator("#new-token")).to_be_visible()

    # The team page's role picker sends its form when changed (app.js, no inline handler).
    visit("/teams/alpha/", "team")
    page.select_option("tr[data-user=bob] select[name=role]", "admin")
    page.wait_for_load_state("networkidle")
    expect(page.locator("tr[data-user=bob] select[name=role]")).to_have_value("admin")

    project, build = site["project"], site["build"]
    visit(f"/projects/{project.pk}/", "project")
    # htmx under the policy: the preview follows the form.
    visit("/projects/new/", "project-new")
    page.fill("input[name=name]", "hello-csp")  # htmx validates the form before it posts
    page.fill("input[name=git_url]", "https://git.example.com/alpha/hello.git")
    page.fill("input[name=image]", "registry.example.com/alpha/hello-csp")
    page.fill("input[name=opt_ldflags]", "-s -w -X main.csp=1")
    expect(page.locator("#dockerfile-preview")).to_contain_text('ARG LDFLAGS="-s -w -X main.csp=1"')

    # The live log's websocket (connect-src is default-src 'self'): the consumer sends the
    # build's status as soon as the socket opens.
    visit(f"/builds/{build.pk}/", "build")
    deadline = time.monotonic() + 10
    while not any('id="build-status"' in str(frame) for frame in frames):
        assert time.monotonic() < deadline, "no websocket frame arrived"
        page.wait_for_timeout(100)

    node, builder, team = site["node"], site["builder"], site["team"]
    visit("/admin/builds/buildernode/", "admin-nodes")
    visit(f"/admin/builds/buildernode/{node.pk}/change/", "admin-node")
    visit(f"/admin/builds/buildernode/{node.pk}/emulators/", "admin-emulators")
    visit(f"/admin/builds/buildxbuilder/{builder.pk}/manage/", "admin-builder")
    visit("/admin/builds/manifestrecord/", "admin-ledger")
    # The admin's own scripts run: the inline formset adds a row.
    visit(f"/admin/portal/team/{team.pk}/change/", "admin-team")
    rows = page.locator(".inline-group tr.form-row:not(.empty-form)")
    before = rows.count()
    page.click("text=Add another Membership")
    expect(rows).to_have_count(before + 1)
    assert not problems, problems
    page.close()


ARTIFACTS = Path(os.environ.get("CROSSPORT_ARTIFACTS", "/tmp/crossport-artifacts")) / "webhooks"


def _signed_push(url: str, secret: str, ref: str) -> int:
    body = json.dumps({"ref": ref, "after": "a" * 40}).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": uuid.uuid4().hex,
            "X-Hub-Signature-256": f"sha256={signature}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("width", [390, 1280])
def test_the_webhook_button_asks_first_and_shows_the_secret_once(
    site: dict[str, Any], portal_url: str, chromium: Any, width: int
) -> None:
    """A team admin makes the webhook (the confirmation is app.js's, under the policy), sees the
    secret once, and the project page then lists deliveries without it; nothing is wider than
    the screen."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(15_000)
    page.on("console", lambda m: "Content Security Policy" in m.text and problems.append(m.text))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def look(name: str) -> None:
        page.screenshot(path=ARTIFACTS / f"{name}-{width}.png", full_page=True)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"{name} is {wide} px wide at {width} px"
        assert not problems, problems

    page.goto(portal_url + "/login/")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "alice-password-1")
    page.click("button[type=submit]")
    project_page = f"{portal_url}/projects/{site['project'].pk}/"
    page.goto(project_page)
    section = page.locator("#webhook")
    expect(section).to_contain_text("No webhook yet")
    # Dismissing the question sends nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#webhook-button")
    page.wait_for_timeout(300)
    expect(section).to_contain_text("No webhook yet")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#webhook-button")
    expect(page.locator("#webhook-secret")).to_be_visible()
    secret = page.locator("#webhook-secret").inner_text().strip()
    url = page.locator("#webhook-url").inner_text().strip()
    assert len(secret) == 64 and url.startswith(portal_url + "/hooks/")
    look("made")

    assert _signed_push(url, secret, "refs/heads/main") == 202
    assert _signed_push(url, secret, "refs/heads/feature") == 200
    assert _signed_push(url, "wrong", "refs/heads/main") == 403
    page.goto(project_page)
    expect(page.locator("#webhook-url")).to_have_text(url)
    rows = page.locator("#webhook-deliveries tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("refused")
    expect(rows.nth(1)).to_contain_text("skipped: branch feature")
    expect(rows.nth(2).locator("a")).to_contain_text("build")
    assert secret not in page.content()
    page.click("#webhook summary")
    expect(page.locator("#webhook-hint")).to_contain_text("X-Hub-Signature-256")
    look("project")
    page.close()
