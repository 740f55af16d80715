"""Every page, as a person sees it in chromium at a phone's width (390 px) and a laptop's
(1280 px): nothing wider than the screen, no template comment showing, every
`aria-describedby` pointing at an element that exists, and a screenshot of each under
/tmp/crossport-artifacts/pages/<name>-<width>.png for a person to look at.

PAGES is the one list of pages: a new page gets a line there."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from browser import log_in
from django.utils import timezone
from ledgerdb import past_the_trigger

from builds import ledger
from builds.models import Build, BuilderNode, BuildPlatform, LogLine
from builds.planner import Plan, Step
from builds.registry import IndexSummary
from portal.models import Project, Team

pytestmark = pytest.mark.django_db(transaction=True)  # the server process reads what we write

ARTIFACTS = Path("/tmp/crossport-artifacts/pages")
WIDTHS = (390, 1280)
PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
DIGEST = "sha256:" + "4d" * 32

# name -> path, given the rows of `site`.
PAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "home": lambda s: "/",
    "team": lambda s: "/teams/alpha/",
    "project-new": lambda s: "/projects/new/",
    "project": lambda s: f"/projects/{s['project'].pk}/",
    "project-settings": lambda s: f"/projects/{s['project'].pk}/settings/",
    "project-dockerfile-edit": lambda s: f"/projects/{s['project'].pk}/Dockerfile/edit",
    "project-history": lambda s: f"/projects/{s['project'].pk}/history",
    "build-queued": lambda s: f"/builds/{s['queued'].pk}/",
    "build-running": lambda s: f"/builds/{s['running'].pk}/",
    "build-failed": lambda s: f"/builds/{s['failed'].pk}/",
    "build-succeeded": lambda s: f"/builds/{s['succeeded'].pk}/",
    "manifest": lambda s: f"/manifests/{s['record'].pk}/",
    "team-manifests": lambda s: "/teams/alpha/manifests/",
    "team-merge": lambda s: "/teams/alpha/merge/",
    "tokens": lambda s: "/tokens/",
    "api-docs": lambda s: "/api/v1/docs",
    "api-index-in-a-browser": lambda s: "/api/v1/",
    "nodes": lambda s: "/nodes/",
    "admin": lambda s: "/admin/",
    "admin-nodes": lambda s: "/admin/builds/buildernode/",
}


def _finished(project: Project, alice: Any, state: str, **fields: Any) -> Build:
    now = timezone.now()
    build = Build.objects.create(
        project=project,
        state=state,
        ref="main",
        commit="c0ffee" * 6 + "abcd",
        tags=["v1.4.2", "latest"],
        platforms=PLATFORMS,
        requested_by=alice,
        started_at=now,
        finished_at=now,
        **fields,
    )
    failed = state == Build.State.FAILED
    for n, platform in enumerate(PLATFORMS):
        BuildPlatform.objects.create(
            build=build,
            platform=platform,
            state=BuildPlatform.State.FAILED if failed and n == 1 else BuildPlatform.State.DONE,
            done=5 if failed and n == 1 else 8,
            total=8,
            failed_step="5/8" if failed and n == 1 else "",
            digest="" if failed else DIGEST,
            started_at=now,
            finished_at=now,
        )
    LogLine.objects.bulk_create(
        LogLine(
            build=build, seq=n, platform=PLATFORMS[n % 3], text=f"#{n} [build 3/8] RUN step {n}"
        )
        for n in range(1, 60)
    )
    return build


def _running(project: Project, alice: Any) -> Build:
    """A build 70 s into a run the plan expected to take 120 s, with a long log."""
    started = timezone.now() - timedelta(seconds=70)
    node = BuilderNode.objects.get(name="local")
    build = Build.objects.create(
        project=project,
        state=Build.State.RUNNING,
        ref="main",
        commit="ab" * 20,
        tags=["latest"],
        platforms=PLATFORMS,
        requested_by=alice,
        started_at=started,
        strategy="auto",
        plan=Plan(
            "auto", [Step(p, "local", node.pk, "cross", 0, 120) for p in PLATFORMS]
        ).to_json(),
    )
    for n, platform in enumerate(PLATFORMS):
        BuildPlatform.objects.create(
            build=build,
            platform=platform,
            state=BuildPlatform.State.RUNNING,
            done=3 + n,
            total=8,
            started_at=started,
            step=f"[{platform} build 4/8] RUN go build -o /out/app .",
        )
    LogLine.objects.bulk_create(
        LogLine(build=build, seq=n, platform=PLATFORMS[n % 3], text=f"#12 compiling package {n}")
        for n in range(1, 301)
    )
    return build


@pytest.fixture
def site(
    alice: Any, project: Project, queued_build: Build, local_node: BuilderNode
) -> dict[str, Any]:
    alice.is_staff = alice.is_superuser = True
    alice.save()
    long_reason = "./main.go:4:2: undefined: nosuchfunc_with_a_rather_long_name_that_must_wrap"
    failed = _finished(
        project, alice, Build.State.FAILED, reason=f"linux/arm64, step 5/8: {long_reason}"
    )
    succeeded = _finished(project, alice, Build.State.SUCCEEDED, digest=DIGEST)
    record = ledger.record(
        reference=f"{project.image}:v1.4.2",
        summary=IndexSummary(
            digest=DIGEST,
            media_type="application/vnd.oci.image.index.v1+json",
            platforms=dict.fromkeys(PLATFORMS, DIGEST),
        ),
        team=Team.objects.get(slug="alpha"),
        pushed_by=alice,
        project=project,
        build=succeeded,
        source=(project.git_url, "main", succeeded.commit),
        builder_node="local",
    )
    yield {
        "running": _running(
            Project.objects.create(
                team=project.team,
                name="busy",
                git_url=project.git_url,
                ref="main",
                image="localhost:5000/alpha/busy",
                platforms=PLATFORMS,
                language="go",
                options={},
                created_by=alice,
            ),
            alice,
        ),
        "project": project,
        "queued": queued_build,
        "failed": failed,
        "succeeded": succeeded,
        "record": record,
    }
    # The test commits rows; emptying the database afterwards deletes from the ledger.
    past_the_trigger("DELETE FROM builds_manifestrecord")


def _login(chromium: Any, url: str, width: int) -> Any:
    page = chromium.new_context(viewport={"width": width, "height": 900}).new_page()
    page.set_default_timeout(15_000)
    log_in(page, url, "alice", "alice-password-1")
    return page


LOOK = """() => {
  const missing = [];
  for (const el of document.querySelectorAll('[aria-describedby]')) {
    for (const id of el.getAttribute('aria-describedby').split(/\\s+/).filter(Boolean)) {
      if (!document.getElementById(id)) missing.push(`${el.name || el.id || el.tagName} -> ${id}`);
    }
  }
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.right > document.documentElement.clientWidth + 1 && getComputedStyle(el).position !== 'fixed') {
      wide.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${el.className} (${Math.round(r.right)})`);
    }
  }
  return {width: document.documentElement.scrollWidth, missing, wide: wide.slice(0, 5),
          text: document.body.innerText};
}"""


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_the_screen(
    site: dict[str, Any], portal_url: str, chromium: Any, width: int
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = _login(chromium, portal_url, width)
    problems: list[str] = []
    page.on(
        "response",
        lambda r: (
            r.status >= 400 and "/static/" in r.url and problems.append(f"{r.url}: {r.status}")
        ),
    )
    for name, path in PAGES.items():
        response = page.goto(portal_url + path(site))
        assert response is not None and response.ok, (name, response and response.status)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        seen = page.evaluate(LOOK)
        if seen["width"] > width:
            problems.append(f"{name}: {seen['width']} px wide at {width}: {seen['wide']}")
        if "{#" in seen["text"] or "#}" in seen["text"]:
            problems.append(f"{name}: a template comment shows")
        if seen["missing"]:
            problems.append(f"{name}: aria-describedby points nowhere: {seen['missing']}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("width", WIDTHS)
def test_switching_language_swaps_the_options_and_the_preview(
    site: dict[str, Any], portal_url: str, chromium: Any, width: int
) -> None:
    from playwright.sync_api import expect

    page = _login(chromium, portal_url, width)
    for path in ("/projects/new/", f"/projects/{site['project'].pk}/settings/"):
        page.goto(portal_url + path)
        expect(page.locator("#plugin-options")).to_contain_text("Linker flags")
        page.select_option("select[name=language]", "python")
        expect(page.locator("#plugin-options")).to_contain_text("Python version")
        expect(page.locator("#plugin-options")).not_to_contain_text("Linker flags")
        expect(page.locator("#dockerfile-preview")).to_contain_text("python plugin")
        expect(page.locator("#preview-error")).to_have_count(0)
        # and a change of an option of the new language shows in the preview
        page.fill("input[name=opt_python_version]", "3.12")
        expect(page.locator("#dockerfile-preview")).to_contain_text("3.12")
        page.screenshot(path=str(ARTIFACTS / f"language-switch{path.count('/')}-{width}.png"))
    # The fixture's file:// URL is outside PORTAL_GIT_FILE_ROOTS: saving says so on the field.
    page.click("#save-settings")
    expect(page.locator("p.error[data-field=git_url]")).to_be_visible()
    page.fill("input[name=git_url]", "https://git.example.com/alpha/hello.git")
    page.select_option("select[name=language]", "python")
    expect(page.locator("#plugin-options")).to_contain_text("Python version")
    page.click("#save-settings")
    expect(page.locator("h1")).to_contain_text("alpha / hello")
    expect(page.locator("dl.facts")).to_contain_text("python")


def test_a_running_build_reads_at_a_glance(
    site: dict[str, Any], portal_url: str, chromium: Any
) -> None:
    from playwright.sync_api import expect

    for width, height in ((1280, 800), (390, 844)):
        page = _login(chromium, portal_url, width)
        page.set_viewport_size({"width": width, "height": height})
        page.goto(portal_url + f"/builds/{site['running'].pk}/")
        card = page.locator('.card[data-platform="linux/arm64"]')
        expect(card.locator(".current")).to_contain_text("RUN go build")
        expect(card.locator(".last-line")).to_contain_text("compiling package")
        elapsed = page.locator("#build-elapsed")
        expect(elapsed).to_contain_text("1 min")
        before = elapsed.text_content() or ""
        expect(elapsed).not_to_have_text(before, timeout=5000)  # it ticks without a request
        expect(page.locator("#build-remaining")).to_contain_text("left")
        expect(page.locator("details#plan")).not_to_have_attribute("open", "")
        if width == 1280:  # a laptop shows the log without scrolling past the plan
            top = page.evaluate("document.getElementById('log').getBoundingClientRect().top")
            assert top < height - 100, top
        follow = page.locator("#follow-log")
        expect(follow).to_be_checked()
        page.evaluate("document.getElementById('log').scrollTop = 0")
        expect(follow).not_to_be_checked()  # reading back stops following
        page.evaluate("const l = document.getElementById('log'); l.scrollTop = l.scrollHeight")
        expect(follow).to_be_checked()
        page.screenshot(path=str(ARTIFACTS / f"build-running-live-{width}.png"))
