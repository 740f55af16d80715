"""How a build ends, on the real stack and in a real browser (Playwright, Debian's chromium),
at phone (390 px) and desktop (1280 px) widths: a Go compile error is the failed build's
headline (API reason and page) with the log opened at that line; a cancelled build reads
cancelled; a succeeded build shows what was pushed with commands to copy; Rebuild (API and
button) builds the same again with the same outcome.

Screenshots go to $CROSSPORT_ARTIFACTS/build-outcomes (default /tmp/crossport-artifacts).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from e2e import test_browser_build
from playwright.sync_api import Browser, Page, expect

from stack import go_project, registry_index, wait_finished

browser = test_browser_build.browser  # the same chromium fixture

ERROR_LINE = "./main.go:4:2: undefined: nosuchfunc"
WIDTHS = {"phone": 390, "desktop": 1280}
ARTIFACTS = Path(os.environ.get("CROSSPORT_ARTIFACTS", "/tmp/crossport-artifacts"))


@pytest.fixture(scope="module")
def broken_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Go program that does not compile: main calls a function that does not exist."""
    work = tmp_path_factory.mktemp("broken-src")
    (work / "go.mod").write_text("module example.com/broken\n\ngo 1.19\n")
    (work / "main.go").write_text("package main\n\nfunc main() {\n\tnosuchfunc()\n}\n")
    git = ["git", "-c", "user.name=E2E", "-c", "user.email=e2e@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", "broken"], check=True)
    return f"file://{work}"


def _build(portal: Any, persona: Any, project_id: int, timeout: float = 600) -> dict[str, Any]:
    status, build = portal.api("POST", f"/api/v1/projects/{project_id}/builds", persona.token, {})
    assert status == 201, build
    return wait_finished(portal, persona.token, build["id"], timeout=timeout)


def _rebuild(portal: Any, persona: Any, build: dict[str, Any]) -> dict[str, Any]:
    """POST .../rebuild: the same project, commit, tags and strategy, queued (not waited for)."""
    status, again = portal.api("POST", f"/api/v1/builds/{build['id']}/rebuild", persona.token)
    assert status == 201, again
    assert again["id"] != build["id"] and again["project"] == build["project"]
    assert again["state"] == "queued" and again["tags"] == build["tags"]
    assert again["ref"] == build["commit"] and again["strategy"] == build["strategy"]
    return dict(again)


def _page(browser: Browser, portal: Any, persona: Any, width: int) -> Page:
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=portal.url)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(portal.url + "/login/")
    page.fill("input[name=username]", persona.username)
    page.fill("input[name=password]", persona.password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Projects")
    return page


def _look(page: Page, name: str, width: int) -> None:
    """Screenshot for a person to look at, and no horizontal scrolling at any width."""
    folder = ARTIFACTS / "build-outcomes"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{name} is {wide} px wide at {width} px"


def test_compile_error_is_the_headline_and_rebuild_fails_alike(
    portal: Any, persona: Any, broken_repo: str, browser: Browser
) -> None:
    project_id, _ = go_project(portal, persona, broken_repo, "broken")
    build = _build(portal, persona, project_id)
    assert build["state"] == "failed" and build["fault"] == "user"
    reason = build["reason"]
    assert ERROR_LINE in reason, reason
    assert reason.startswith("linux/") and ", step " in reason and "(go build): " in reason
    _, log = portal.api("GET", f"/api/v1/builds/{build['id']}/log", persona.token)
    cause = next(line for line in log["lines"] if line["seq"] == build["reason_line"])
    assert cause["text"].endswith(ERROR_LINE)
    failed = {p: s for p, s in build["platforms"].items() if s["state"] == "failed"}
    assert failed and all(s["failed_step"] for s in failed.values())
    # Each platform whose step failed on its own says at which step; the headline is one of them.
    platform = reason.split(",", 1)[0]
    assert platform in failed, (reason, failed)
    assert reason.startswith(f"{platform}, step {failed[platform]['failed_step']} (go build): ")
    assert {s["state"] for s in build["platforms"].values()} <= {"failed", "cancelled"}

    # The rebuild fails the same way; a page opened as soon as it is queued (mostly while it
    # runs: the cache makes it quick) shows the headline and the highlighted line without a reload.
    queued = _rebuild(portal, persona, build)
    page = _page(browser, portal, persona, WIDTHS["desktop"])
    page.goto(f"{portal.url}/builds/{queued['id']}/")
    page.evaluate("window.__noReload = true")
    again = wait_finished(portal, persona.token, queued["id"], timeout=600)
    assert again["state"] == "failed" and ERROR_LINE in again["reason"]
    expect(page.locator("#build-headline")).to_contain_text(again["reason"])
    expect(page.locator("#log .line.cause")).to_contain_text(ERROR_LINE)
    assert page.evaluate("window.__noReload") is True
    page.context.close()

    for width in WIDTHS.values():
        page = _page(browser, portal, persona, width)
        page.goto(f"{portal.url}/builds/{build['id']}/")
        expect(page.locator("#build-headline")).to_contain_text(ERROR_LINE)
        expect(page.locator("#build-headline")).to_contain_text(reason)
        highlighted = page.locator("#log .line.cause")
        expect(highlighted).to_have_count(1)
        expect(highlighted).to_contain_text(ERROR_LINE)
        # The log opened scrolled to that line: it is inside the log's visible box.
        log_box = page.locator("#log").bounding_box()
        line_box = highlighted.bounding_box()
        assert log_box and line_box
        assert (
            log_box["y"] <= line_box["y"] <= log_box["y"] + log_box["height"] - line_box["height"]
        )
        for platform, state in failed.items():
            card = page.locator(f"[data-platform='{platform}']")
            expect(card).to_contain_text(f"step {state['failed_step']} failed")
            expect(card.locator(".state")).to_have_text("failed")
        expect(page.locator("#rebuild-button")).to_be_visible()
        _look(page, "failed", width)
        page.context.close()


def test_cancelled_build_reads_cancelled(
    portal: Any, persona: Any, slow_repo: str, browser: Browser
) -> None:
    project_id, _ = go_project(portal, persona, slow_repo, "slow-outcome")
    status, build = portal.api("POST", f"/api/v1/projects/{project_id}/builds", persona.token, {})
    assert status == 201
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        _, log = portal.api("GET", f"/api/v1/builds/{build['id']}/log", persona.token)
        if any("go build" in line["text"] for line in log["lines"]):
            break
        time.sleep(0.3)
    status, _ = portal.api("POST", f"/api/v1/builds/{build['id']}/cancel", persona.token)
    assert status == 202
    result = wait_finished(portal, persona.token, build["id"], timeout=90)
    assert result["state"] == "cancelled", result["reason"]
    assert {p["state"] for p in result["platforms"].values()} == {"cancelled"}

    for width in WIDTHS.values():
        page = _page(browser, portal, persona, width)
        page.goto(f"{portal.url}/builds/{build['id']}/")
        expect(page.locator("#build-state")).to_have_text("cancelled")
        assert "failed" not in page.locator("#build-status").inner_text()
        # Grey (--muted), never red: the status is swapped in again over the websocket.
        expect(page.locator("#build-state")).to_have_css("color", "rgb(91, 102, 115)")
        page.goto(f"{portal.url}/projects/{project_id}/")
        expect(
            page.locator(f"a[href='/builds/{build['id']}/']").locator("xpath=../..")
        ).to_contain_text("cancelled")
        page.goto(f"{portal.url}/builds/{build['id']}/")
        _look(page, "cancelled", width)
        page.context.close()


def test_success_shows_the_push_and_rebuild_button_builds_again(
    portal: Any, persona: Any, hello_repo: str, browser: Browser
) -> None:
    project_id, image = go_project(portal, persona, hello_repo, "outcome-ok")
    build = _build(portal, persona, project_id)
    assert build["state"] == "succeeded", build["reason"]
    digest = build["manifest"]["digest"]
    assert digest == registry_index(image, "latest")[0]

    for label, width in WIDTHS.items():
        page = _page(browser, portal, persona, width)
        page.goto(f"{portal.url}/builds/{build['id']}/")
        expect(page.locator("#pull-command")).to_have_text(f"docker pull {image}@{digest}")
        expect(page.locator("#inspect-command")).to_have_text(
            f"docker buildx imagetools inspect {image}:latest"
        )
        copy = page.locator("button[data-copy='#pull-command']")
        # The label says "Copied" for 1.5 s: record every label it shows, so a slow machine
        # cannot miss it between two looks. The websocket may swap #build-status (and the
        # button in it) at any moment, so watch the whole page and read the current button.
        page.evaluate(
            """() => { const sel = "button[data-copy='#pull-command']"; window.__labels = [];
                new MutationObserver(() => window.__labels.push(document.querySelector(sel)?.textContent))
                .observe(document.body, {childList: true, characterData: true, subtree: true}); }"""
        )
        copy.click()
        deadline = time.monotonic() + 15
        while "Copied" not in page.evaluate("window.__labels") and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert "Copied" in page.evaluate("window.__labels")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == f"docker pull {image}@{digest}"
        for platform, state in build["platforms"].items():
            expect(page.locator("#platform-digests")).to_contain_text(platform)
            expect(page.locator("#platform-digests")).to_contain_text(state["digest"])
        _look(page, "succeeded", width)
        if label == "desktop":
            page.click("#ledger-link")
            expect(page.locator("#recorded-digest")).to_have_text(digest)
            page.goto(f"{portal.url}/builds/{build['id']}/")
            page.click("#rebuild-button")
            expect(page.locator("h1")).not_to_contain_text(f"Build {build['id']} ")
            new_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
            assert new_id != build["id"]
            expect(page.locator(".flash")).to_contain_text(f"Build {new_id} queued")
            again = wait_finished(portal, persona.token, new_id, timeout=600)
            assert again["state"] == "succeeded", again["reason"]
            assert again["ref"] == build["commit"] and again["tags"] == build["tags"]
            # The page follows the build live to its pushed result.
            expect(page.locator("#pull-command")).to_contain_text(again["manifest"]["digest"])
        page.context.close()
