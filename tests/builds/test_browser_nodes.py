"""The builder nodes page and the confirmations, in a real browser (tests/browser.py: chromium
against `manage.py serve --no-worker`, no Docker) at 390 and 1280 px.

A confirmation is asked before every destructive button: dismissing the dialog sends nothing,
accepting does the action. Screenshots: /tmp/crossport-artifacts/nodes/ ($CROSSPORT_ARTIFACTS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import browser
import pytest

from builds import credentials
from builds.models import Build, BuilderNode, BuildPlatform
from builds.services import queue_build
from portal.models import ApiToken, Project

pytestmark = pytest.mark.django_db(transaction=True)  # the server process reads what we write
portal_url, chromium = browser.portal_url, browser.chromium  # the shared fixtures
SHOTS = browser.ARTIFACTS / "nodes"
WIDTHS = [390, 1280]


@pytest.fixture
def site(alice: Any, project: Project, queued_build: Build, tmp_path: Path) -> dict[str, Any]:
    """Written before the browser starts (Django refuses database calls in Playwright's thread)."""
    alice.is_staff = alice.is_superuser = True
    alice.save()
    local = BuilderNode.objects.get(name="local")
    local.engine_version, local.buildkit_version = "26.1.5+dfsg1", "v0.0.0+unknown"
    local.save()
    running = queue_build(project, alice)
    Build.objects.filter(pk=running.pk).update(state=Build.State.RUNNING)
    BuildPlatform.objects.filter(build=running).update(node=local)
    far = BuilderNode.objects.create(
        name="arm-pool-builder-with-a-long-name",
        endpoint=f"unix://{tmp_path}/far.sock",  # a check fails at once, no Docker needed
        enabled=False,
        last_error="error during connect: Get http://%2Fvar%2Frun%2Fdocker.sock/v1.41/version: "
        "dial unix /var/run/docker.sock: connect: no such file or directory" * 2,
        native_platforms=["linux/arm64"],
        emulated_platforms=["linux/amd64", "linux/riscv64", "linux/ppc64le", "linux/s390x"],
    )
    far.reserved_for.add(project.team)
    ApiToken.issue(alice, "ci-deploy")
    credentials.save_login(project.team, "localhost:5000", "ci", "a-password", alice)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return {"queued": queued_build, "running": running, "local": local, "far": far}


def _page(chromium: Any, portal_url: str, width: int) -> tuple[Any, list[str]]:
    """A logged-in page that records the POSTs it sends (and script errors, as "error: ...")."""
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(15_000)
    posts: list[str] = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    page.on("pageerror", lambda error: posts.append(f"error: {error}"))
    browser.log_in(page, portal_url, "alice", "alice-password-1")
    posts.clear()
    return page, posts


def _fits(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"page is {width} px wide"


@pytest.mark.parametrize("width", WIDTHS)
def test_the_nodes_page_at(
    width: int, site: dict[str, Any], portal_url: str, chromium: Any
) -> None:
    from playwright.sync_api import expect

    page, posts = _page(chromium, portal_url, width)
    page.click("header >> text=Builder nodes")
    expect(page.locator("h1")).to_have_text("Builder nodes")
    local = page.locator("article[data-node=local]")
    far = page.locator("article[data-node=arm-pool-builder-with-a-long-name]")
    expect(local.locator("[data-health]")).to_have_text("healthy")
    expect(local.locator("[data-buildkit]")).to_have_text("bundled with Docker 26.1.5+dfsg1")
    expect(local.locator("[data-running]")).to_contain_text(f"#{site['running'].pk}")
    expect(far.locator("[data-health]")).to_have_text("unknown")
    expect(far.locator("[data-disabled]")).to_be_visible()
    expect(far).to_contain_text("alpha")
    _fits(page)
    page.screenshot(path=SHOTS / f"nodes-{width}.png", full_page=True)

    # Disable local: dismissed, nothing is sent; accepted, the node is drained.
    page.once("dialog", lambda dialog: dialog.dismiss())
    local.locator("button[value=disable]").click()
    page.wait_for_timeout(300)
    assert posts == []
    expect(local.locator("[data-disabled]")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())
    local.locator("button[value=disable]").click()
    expect(page.locator(".flash")).to_contain_text("local disabled")
    expect(local.locator("[data-disabled]")).to_be_visible()
    expect(local.locator("button[value=enable]")).to_be_visible()

    # Check the far node: the health check runs and says why it is unhealthy.
    page.once("dialog", lambda dialog: dialog.accept())
    far.locator("button[value=check]").click()
    expect(page.locator(".flash")).to_contain_text("is unhealthy")
    expect(far.locator("[data-health]")).to_have_text("unhealthy")
    _fits(page)
    page.screenshot(path=SHOTS / f"nodes-after-{width}.png", full_page=True)
    assert not [p for p in posts if p.startswith("error:")], posts
    page.close()


def test_destructive_buttons_ask_first(
    site: dict[str, Any], portal_url: str, chromium: Any
) -> None:
    from playwright.sync_api import expect

    page, posts = _page(chromium, portal_url, 1280)
    questions: list[str] = []

    def answer(accept: bool) -> None:
        def handle(dialog: Any) -> None:
            questions.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.once("dialog", handle)

    page.goto(portal_url + "/tokens/")
    revoke = page.locator("tr", has_text="ci-deploy").locator("button", has_text="Revoke")
    answer(False)
    revoke.click()
    page.wait_for_timeout(300)
    assert posts == [] and "Revoke the token ci-deploy?" in questions[-1]
    answer(True)
    revoke.click()
    expect(page.locator("tr", has_text="ci-deploy")).to_contain_text("revoked")

    page.goto(portal_url + "/teams/alpha/")
    login = page.locator("tr[data-registry='localhost:5000']")
    answer(False)
    login.locator("button[value=delete]").click()
    page.wait_for_timeout(300)
    assert len(posts) == 1 and "Delete the login for localhost:5000?" in questions[-1]
    expect(login).to_be_visible()
    answer(True)
    login.locator("button[value=delete]").click()
    expect(page.locator(".flash")).to_contain_text("deleted the login for localhost:5000")
    expect(login).to_have_count(0)

    build = site["queued"]
    page.goto(f"{portal_url}/builds/{build.pk}/")
    page.wait_for_load_state("networkidle")
    answer(False)
    page.click("#cancel-button")
    page.wait_for_timeout(300)
    assert not [url for url in posts if url.endswith("/cancel")]
    assert questions[-1] == f"Cancel build {build.pk}?"
    expect(page.locator("#build-status")).to_have_attribute("data-state", "queued")
    answer(True)
    page.click("#cancel-button")
    expect(page.locator("#build-status")).to_have_attribute("data-state", "cancelled")
    page.screenshot(path=SHOTS / "cancelled-1280.png", full_page=True)
    assert not [p for p in posts if p.startswith("error:")], posts
    page.close()
