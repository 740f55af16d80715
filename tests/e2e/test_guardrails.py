"""What a pushed image says about itself, and the guardrails around a build, on the real stack:
OCI labels on every platform's image config and a provenance attestation, read back from the
registry; the architecture check recorded for amd64, arm64 and arm/v7 on the Go sample; an
image whose every platform holds an amd64 binary fails before anything is tagged; a platform
the base image lacks is refused within seconds, before any buildx run."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from e2e import test_browser_build, test_build_outcomes
from playwright.sync_api import Browser, Page, expect

from stack import (
    PLATFORMS,
    REGISTRY,
    SecondEngine,
    buildx_processes,
    go_project,
    login_session,
    platform_manifests,
    registry_json,
    registry_tags,
    wait_finished,
)

browser = test_browser_build.browser  # the same chromium fixture
ARTIFACTS = Path(os.environ.get("CROSSPORT_ARTIFACTS", "/tmp/crossport-artifacts")) / "guardrails"
WIDTHS = (390, 1280)
ATTESTATION = "attestation-manifest"
PROVENANCE = "https://slsa.dev/provenance/v0.2"
MACHINES = {
    "linux/amd64": "x86-64 64-bit",
    "linux/arm64": "AArch64 64-bit",
    "linux/arm/v7": "ARM 32-bit",  # Go's linker sets no float-ABI flag
}

# Every platform's image gets the amd64 build of the program.
AMD64_EVERYWHERE = f"""\
FROM --platform=$BUILDPLATFORM {REGISTRY}/library/golang:1.19 AS build
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o /out/app .

FROM {REGISTRY}/library/alpine:3.20
COPY --from=build /out/app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
"""


def _build(portal: Any, persona: Any, project_id: int, body: Any = None) -> dict[str, Any]:
    status, build = portal.api(
        "POST", f"/api/v1/projects/{project_id}/builds", persona.token, body or {}
    )
    assert status == 201, build
    return dict(build)


@pytest.fixture(scope="module")
def good_build(portal: Any, persona: Any, hello_repo: str) -> tuple[dict[str, Any], str]:
    """The Go sample at its release tag v1.0.0, for the three platforms."""
    project_id, image = go_project(portal, persona, hello_repo, "guard-good")
    queued = _build(portal, persona, project_id, {"ref": "v1.0.0", "tags": ["1.0.0"]})
    build = wait_finished(portal, persona.token, queued["id"], timeout=900)
    assert build["state"] == "succeeded", build["reason"]
    return build, image


def test_labels_on_every_platforms_image_config(good_build: tuple[dict[str, Any], str]) -> None:
    build, image = good_build
    index = registry_json(image, "manifests", "1.0.0")
    manifests = platform_manifests(index)
    assert sorted(manifests) == sorted(PLATFORMS)
    for platform, digest in manifests.items():
        manifest = registry_json(image, "manifests", digest)
        config = registry_json(image, "blobs", manifest["config"]["digest"])
        labels = config["config"]["Labels"]
        assert labels["org.opencontainers.image.revision"] == build["commit"], platform
        assert labels["org.opencontainers.image.source"].startswith("file:///"), platform
        assert labels["org.opencontainers.image.version"] == "1.0.0", platform
        assert labels["org.opencontainers.image.title"].startswith("guard-good"), platform
        assert labels["org.opencontainers.image.created"].startswith("20"), platform
    # and on the index itself
    assert index["annotations"]["org.opencontainers.image.revision"] == build["commit"]


def test_provenance_attestation_in_the_pushed_index(
    portal: Any, persona: Any, good_build: tuple[dict[str, Any], str]
) -> None:
    build, image = good_build
    index = registry_json(image, "manifests", "1.0.0")
    manifests = platform_manifests(index)
    attestations = [
        m
        for m in index["manifests"]
        if (m.get("annotations") or {}).get("vnd.docker.reference.type") == ATTESTATION
    ]
    assert {a["annotations"]["vnd.docker.reference.digest"] for a in attestations} == set(
        manifests.values()
    )
    manifest = registry_json(image, "manifests", attestations[0]["digest"])
    (layer,) = [
        layer
        for layer in manifest["layers"]
        if layer["annotations"]["in-toto.io/predicate-type"] == PROVENANCE
    ]
    statement = registry_json(image, "blobs", layer["digest"])
    # mode=max: the build's definition is in it, and the base images among its materials.
    assert "buildConfig" in statement["predicate"]
    materials = " ".join(m["uri"] for m in statement["predicate"]["materials"])
    assert "library/alpine" in materials
    # The API lists them, with what they attest and for which platform.
    _, detail = portal.api("GET", f"/api/v1/builds/{build['id']}", persona.token)
    listed = {(a["platform"], a["kinds"]) for a in detail["attestations"]}
    assert listed == {(p, "provenance") for p in PLATFORMS}


def test_arch_checks_recorded_ok_for_each_platform(
    good_build: tuple[dict[str, Any], str],
) -> None:
    build, _ = good_build
    for platform in PLATFORMS:
        check = build["platforms"][platform]["arch_check"]
        assert check == {
            "binary": "/usr/local/bin/app",
            "machine": MACHINES[platform],
            "ok": True,
        }, platform


@pytest.fixture(scope="module")
def wrong_build(portal: Any, persona: Any, hello_repo: str) -> tuple[dict[str, Any], str]:
    """The project's own Dockerfile puts the amd64 program into every platform's image."""
    project_id, image = go_project(portal, persona, hello_repo, "guard-wrong")
    session = login_session(portal, persona)
    session(f"/projects/{project_id}/Dockerfile/edit", {"dockerfile": AMD64_EVERYWHERE})
    queued = _build(portal, persona, project_id, {"tags": ["1.0.0", "latest"]})
    return wait_finished(portal, persona.token, queued["id"], timeout=900), image


def test_an_amd64_binary_in_every_image_fails_and_tags_nothing(
    wrong_build: tuple[dict[str, Any], str],
) -> None:
    build, image = wrong_build
    assert build["state"] == "failed"
    assert build["reason"].startswith("architecture check failed: linux/arm64: ")
    assert "/usr/local/bin/app" in build["reason"] and "x86-64 64-bit" in build["reason"]
    checks = {p: build["platforms"][p]["arch_check"] for p in PLATFORMS}
    assert checks["linux/amd64"]["ok"] is True
    assert checks["linux/arm64"] == {
        "binary": "/usr/local/bin/app",
        "machine": "x86-64 64-bit",
        "ok": False,
    }
    assert checks["linux/arm/v7"]["ok"] is False
    assert build["platforms"]["linux/arm64"]["state"] == "failed"
    # The build's tags were never pushed: only the run's staging tag (and its layer cache) exist.
    tags = registry_tags(image)
    assert "1.0.0" not in tags and "latest" not in tags
    assert all(t.startswith(("crossport-build-", "crossport-cache-")) for t in tags), tags
    assert build["manifest"] is None


def test_a_platform_the_base_image_lacks_is_refused_fast(
    portal: Any, persona: Any, hello_repo: str
) -> None:
    platforms = ["linux/amd64", "linux/s390x"]  # the stand-in alpine has no linux/s390x
    project_id, _ = go_project(portal, persona, hello_repo, "guard-s390x", platforms=platforms)
    started = time.monotonic()
    queued = _build(portal, persona, project_id)
    seen_buildx = False
    while True:
        seen_buildx |= any(f"build-{queued['id']}-" in line for line in buildx_processes())
        _, build = portal.api("GET", f"/api/v1/builds/{queued['id']}", persona.token)
        if build["state"] in ("succeeded", "failed", "cancelled"):
            break
        assert time.monotonic() - started < 10, "the refusal took longer than 10 s"
        time.sleep(0.2)
    assert time.monotonic() - started < 10
    assert build["state"] == "failed"
    assert build["reason"].startswith(
        f"base image {REGISTRY}/library/alpine:3.20 has no linux/s390x"
    ), build["reason"]
    assert not seen_buildx
    assert all(p["started_at"] is None for p in build["platforms"].values())


def test_a_merge_of_two_nodes_runs_keeps_every_attestation(
    portal: Any,
    persona: Any,
    hello_repo: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """strategy=native over the local engine and a second one: each run's push is checked,
    then merged; the merged index keeps every run's attestation manifests."""
    engine = SecondEngine(tmp_path_factory.mktemp("guard-second"))
    engine.start()
    staff = portal.manage("portal_user", "guard-ops", "--team", "guard-ops", "--staff")
    token = staff.strip().splitlines()[-1]
    body = {"name": f"guard-{uuid.uuid4().hex[:6]}", "endpoint": engine.endpoint}
    status, node = portal.api("POST", "/api/v1/nodes", token, body | {"tls": engine.client_tls})
    try:
        assert status == 201 and node["reachable"], node
        project_id, image = go_project(portal, persona, hello_repo, "guard-merge")
        queued = _build(portal, persona, project_id, {"strategy": "native"})
        build = wait_finished(portal, persona.token, queued["id"], timeout=900)
        assert build["state"] == "succeeded", build["reason"]
        assert {row["node"] for row in build["platforms"].values()} == {"local", node["name"]}
        assert all(row["arch_check"]["ok"] for row in build["platforms"].values())
        index = registry_json(image, "manifests", "latest")
        manifests = platform_manifests(index)
        attested = {
            m["annotations"]["vnd.docker.reference.digest"]
            for m in index["manifests"]
            if (m.get("annotations") or {}).get("vnd.docker.reference.type") == ATTESTATION
        }
        assert attested == set(manifests.values())
        assert len(build["attestations"]) == len(PLATFORMS)
    finally:
        if status == 201:
            portal.api("PATCH", f"/api/v1/nodes/{node['id']}", token, {"enabled": False})
        engine.stop()


def _look(page: Page, name: str, width: int) -> None:
    """Screenshot for a person to look at, and no horizontal scrolling at any width."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{name} is {wide} px wide at {width} px"


def test_the_build_pages_show_the_checks_and_the_attestations(
    browser: Browser,
    portal: Any,
    persona: Any,
    good_build: tuple[dict[str, Any], str],
    wrong_build: tuple[dict[str, Any], str],
) -> None:
    good, wrong = good_build[0], wrong_build[0]
    for width in WIDTHS:
        page = test_build_outcomes._page(browser, portal, persona, width)
        page.goto(f"{portal.url}/builds/{good['id']}/")
        for platform in PLATFORMS:
            check = page.locator(f"[data-platform='{platform}'] .arch")
            expect(check).to_be_visible()
            expect(check).to_have_text(f"✓ /usr/local/bin/app is {MACHINES[platform]}")
        table = page.locator("#build-attestations")
        expect(table).to_be_visible()
        expect(table.locator("tbody tr")).to_have_count(len(PLATFORMS))
        expect(table).to_contain_text("provenance")
        _look(page, "succeeded", width)

        page.goto(f"{portal.url}/builds/{wrong['id']}/")
        expect(page.locator("#build-headline")).to_contain_text("architecture check failed")
        bad = page.locator("[data-platform='linux/arm64'] .arch")
        expect(bad).to_have_text("✗ /usr/local/bin/app is x86-64 64-bit")
        expect(bad).to_have_class("arch error")
        expect(page.locator("[data-platform='linux/amd64'] .arch")).to_contain_text("✓")
        expect(page.locator("#result")).to_have_count(0)  # nothing was pushed under a tag
        _look(page, "wrong-architecture", width)
        page.context.close()
