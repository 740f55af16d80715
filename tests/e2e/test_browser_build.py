"""A real browser (Playwright driving Debian's chromium) walks the whole path: log in,
register the project, preview the Dockerfile, build, watch the log grow live, see the digest."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from stack import PLATFORMS, registry_index, unique_image

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(executable):
        if os.environ.get("CI"):
            pytest.fail(f"chromium missing at {executable}")
        pytest.skip(f"chromium missing at {executable}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _login(page: Page, portal: Any, persona: Any) -> None:
    page.goto(portal.url + "/login/")
    page.fill("input[name=username]", persona.username)
    page.fill("input[name=password]", persona.password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Projects")


def test_register_build_and_watch_live_in_the_browser(
    browser: Browser, portal: Any, persona: Any, hello_repo: str, tmp_path: Any
) -> None:
    page = browser.new_page()
    page.set_default_timeout(30_000)
    _login(page, portal, persona)

    page.click("text=New project")
    image = unique_image("hello-browser")
    page.fill("input[name=name]", "hello-browser")
    page.fill("input[name=git_url]", hello_repo)
    page.fill("input[name=image]", image)
    for platform in PLATFORMS:
        page.check(f"input[name=platforms][value='{platform}']")
    # The form fills itself from the source: the portal clones it and asks the plugins.
    page.click("#detect-button")
    expect(page.locator("#detect-result")).to_contain_text("Detected: go")
    expect(page.locator("#detect-result")).to_contain_text("go.mod")
    expect(page.locator("select[name=language]")).to_have_value("go")
    expect(page.locator("input[name=opt_main]")).to_have_value(".")
    expect(page.locator("#findings")).to_contain_text("Parses cleanly")
    # The preview follows the options as they are typed (htmx), before anything is saved.
    page.fill("input[name=opt_ldflags]", "-s -w -X main.note=browser")
    expect(page.locator("#dockerfile-preview")).to_contain_text(
        'ARG LDFLAGS="-s -w -X main.note=browser"'
    )
    page.fill("input[name=opt_ldflags]", "bad\u0007value")
    expect(page.locator("#preview-error")).to_contain_text("ldflags")
    page.fill("input[name=opt_ldflags]", "-s -w")
    expect(page.locator("#dockerfile-preview")).to_contain_text('ARG LDFLAGS="-s -w"')

    page.click("button[name=register]")
    expect(page.locator("h1")).to_contain_text("hello-browser")
    expect(page.locator("#dockerfile-preview")).to_contain_text("FROM --platform=$BUILDPLATFORM")
    with page.expect_download() as download:
        page.click("text=download")
    saved = tmp_path / "Dockerfile"
    download.value.save_as(saved)
    assert saved.read_text().strip() == page.locator("#dockerfile-preview").inner_text().strip()

    page.click("#build-button")
    expect(page.locator("h1")).to_contain_text("Build")
    page.evaluate("window.__noReload = true")  # proves the page is never reloaded below
    lines = page.locator("#log .line")
    # How far the server-rendered log went: the websocket continues after that seq.
    ws_url = page.locator("#live").get_attribute("ws-connect") or ""
    at_load = int(ws_url.rsplit("after=", 1)[1])
    states = set()
    deadline = time.monotonic() + 600
    while (state := page.locator("#build-status").get_attribute("data-state")) in (
        "queued",
        "running",
    ):
        states.add(state)
        assert time.monotonic() < deadline, "build did not finish in 10 minutes"
        time.sleep(0.2)
    assert page.evaluate("window.__noReload") is True
    assert lines.count() > at_load + 10, f"log did not grow live: {at_load} -> {lines.count()}"
    assert states, "the page never showed the build queued or running"

    expect(page.locator("#build-state")).to_have_text("succeeded")
    digest = page.locator("#build-digest").inner_text()
    assert digest == registry_index(image, "latest")[0]
    seqs = [int(s) for s in lines.evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert seqs == list(range(1, len(seqs) + 1)), (
        "live lines arrived out of order, duplicated or with a gap"
    )
    for platform in PLATFORMS:
        expect(page.locator(f"[data-platform='{platform}']")).to_contain_text("done")
    # The plan (the Go plugin compiles on the build platform: foreign targets are "cross") and
    # the same build as commands to type.
    expect(page.locator("[data-plan-platform='linux/amd64']")).to_contain_text("native")
    expect(page.locator("[data-plan-platform='linux/arm64']")).to_contain_text("cross")
    expect(page.locator("[data-platform='linux/arm64'] .seconds")).to_contain_text(" s")
    expect(page.locator("#cli pre")).to_contain_text(
        "docker --context=local buildx build --platform=linux/amd64,linux/arm64,linux/arm/v7"
    )

    page.click("text=" + "hello-browser")
    page.click("text=Pushed manifests")
    expect(page.locator("#ledger")).to_contain_text(digest)
    # The inspect view asks the registry what the tag points to now: no drift.
    page.locator("#ledger ul.tags a").first.click()
    expect(page.locator("#drift")).to_contain_text("unchanged")
    expect(page.locator("#recorded-digest")).to_have_text(digest)
    page.close()
