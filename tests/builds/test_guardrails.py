"""The guardrails around a build: base images checked before any run, each platform's binary
checked before any tag; provenance (and an SBOM) in the argv; what the page and API show."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from builds import guardrails, registry
from builds.failures import BuildFailed
from builds.models import Build, ManifestRecord
from builds.registry import IndexSummary
from builds.services import queue_build
from builds.worker import work_once
from fakes import INDEX_DIGEST, PLATFORM_DIGESTS, FakeBackend, second_node
from portal.grammar.git import without_userinfo

AMD64, ARM64, ARMV7 = "linux/amd64", "linux/arm64", "linux/arm/v7"
ALPINE = "localhost:5000/library/alpine:3.20"
GOLANG = "localhost:5000/library/golang:1.19"
ALL = [(AMD64, AMD64), (ARM64, AMD64), (ARMV7, AMD64)]


# --- which base images must offer which platforms ----------------------------------------


def test_a_stage_on_buildplatform_needs_only_the_native_platform() -> None:
    text = (
        f"FROM --platform=$BUILDPLATFORM {GOLANG} AS build\nRUN go build\n"
        f"FROM {ALPINE}\nCOPY --from=build /out/app /app\n"
    )
    assert guardrails.base_images(text, ALL) == {GOLANG: {AMD64}, ALPINE: {AMD64, ARM64, ARMV7}}
    # A node of another kind builds arm64 natively: then it needs golang for arm64 too.
    mixed = [(AMD64, AMD64), (ARM64, ARM64)]
    assert guardrails.base_images(text, mixed)[GOLANG] == {AMD64, ARM64}


def test_arg_defaults_expand_as_buildkit_does_for_from() -> None:
    text = (
        "ARG REGISTRY=localhost:5000\n"
        'ARG BASE="${REGISTRY}/library/python"\n'
        "ARG FLAVOUR\n"
        "FROM ${BASE}:${VERSION:-3.11}${FLAVOUR:+-$FLAVOUR} AS deps\n"
        "ARG LATE=ignored\n"
        "FROM deps AS test\n"
        "FROM scratch\n"
        "COPY --from=test /x /x\n"
    )
    assert guardrails.base_images(text, [(AMD64, AMD64)]) == {
        "localhost:5000/library/python:3.11": {AMD64}
    }
    with_flavour = guardrails.base_images(text, [(AMD64, AMD64)], {"FLAVOUR": "slim"})
    assert with_flavour == {"localhost:5000/library/python:3.11-slim": {AMD64}}


def test_an_image_named_per_target_is_checked_per_target() -> None:
    text = "FROM localhost:5000/library/base:${TARGETARCH}${TARGETVARIANT}\n"
    assert guardrails.base_images(text, [(AMD64, AMD64), (ARMV7, AMD64)]) == {
        "localhost:5000/library/base:amd64": {AMD64},
        "localhost:5000/library/base:armv7": {ARMV7},
    }


def test_a_dockerfile_that_does_not_parse_is_left_to_buildx() -> None:
    assert guardrails.base_images("FROM\n", ALL) == {}
    assert guardrails.base_images("FROM ${NOWHERE}\n", ALL) == {}


# --- the check itself -----------------------------------------------------------------------


def test_a_missing_platform_names_the_image_and_the_platform() -> None:
    reads: list[str] = []
    said: list[str] = []

    def read(image: str) -> set[str]:
        reads.append(image)
        return {AMD64, ARM64} if image == ALPINE else {AMD64, ARM64, ARMV7}

    check = guardrails.BaseImageCheck(said.append, read)
    text = f"FROM --platform=$BUILDPLATFORM {GOLANG} AS b\nFROM {ALPINE}\nFROM {ALPINE} AS two\n"
    with pytest.raises(BuildFailed) as info:
        check.check(text, ALL)
    assert info.value.reason == (
        f"base image {ALPINE} has no linux/arm/v7 (it offers linux/amd64, linux/arm64)"
    )
    assert info.value.fault == Build.Fault.USER
    assert sorted(reads) == [ALPINE, GOLANG]  # each image read once per build


def test_an_unreadable_base_image_is_left_to_buildx() -> None:
    said: list[str] = []

    def read(image: str) -> set[str]:
        raise registry.RegistryError("imagetools inspect failed: not found")

    guardrails.BaseImageCheck(said.append, read).check(f"FROM {ALPINE}\n", ALL)
    assert said == [f"base image {ALPINE} not checked: imagetools inspect failed: not found"]


def test_offered_platforms_of_an_index_and_of_a_single_image(monkeypatch: Any) -> None:
    index = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
            {
                "digest": "sha256:" + "2" * 64,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
            {
                "digest": "sha256:" + "3" * 64,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            },
        ],
    }
    single = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}
    config = {"os": "linux", "architecture": "arm", "variant": "v7"}
    calls: list[tuple[str, ...]] = []

    def imagetools(*args: str, **_: Any) -> bytes:
        calls.append(args)
        if args[1].startswith("--format"):
            return json.dumps(config).encode()
        return json.dumps(index if args[-1].endswith(":multi") else single).encode()

    monkeypatch.setattr(registry, "imagetools", imagetools)
    assert guardrails.offered_platforms("localhost:5000/library/x:multi") == {AMD64, ARM64}
    assert guardrails.offered_platforms("localhost:5000/library/x:one") == {ARMV7}
    assert calls[-1] == (
        "inspect",
        "--format={{json .Image}}",
        "--",
        "localhost:5000/library/x:one",
    )


# --- in the pipeline --------------------------------------------------------------------------


def test_a_platform_the_base_image_lacks_fails_before_any_run(project: Any, alice: Any) -> None:
    build = queue_build(project, alice)
    backend = FakeBackend()
    backend.base_images = {ALPINE: {AMD64, ARM64}}
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.FAILED and build.fault == Build.Fault.USER
    assert build.reason.startswith(f"base image {ALPINE} has no linux/arm/v7")
    assert backend.specs == []  # no buildx run
    assert sorted(backend.base_reads) == [ALPINE, GOLANG]
    assert not build.platform_states.exclude(started_at=None).exists()


def test_a_wrong_binary_fails_the_build_before_any_tag(project: Any, alice: Any) -> None:
    build = queue_build(project, alice, tags=["v1", "latest"])
    backend = FakeBackend()
    backend.wrong_machines = {ARM64: "x86-64 64-bit", ARMV7: "x86-64 64-bit"}
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.FAILED and build.fault == Build.Fault.USER
    assert build.reason == (
        "architecture check failed: linux/arm64: the image runs /usr/local/bin/app, "
        "built for x86-64 64-bit (expected AArch64 64-bit); nothing was tagged"
    )
    assert backend.tagged == [] and backend.merged == []
    assert not ManifestRecord.objects.exists() and build.digest == ""
    rows = {r.platform: r for r in build.platform_states.all()}
    assert rows[AMD64].arch_check == {
        "binary": "/usr/local/bin/app",
        "machine": "x86-64 64-bit",
        "ok": True,
    }
    assert rows[ARM64].arch_check["ok"] is False and rows[ARM64].state == "failed"
    assert rows[AMD64].state == "cancelled" and "not tagged" in rows[AMD64].reason
    api = build.to_api()
    assert api["platforms"][ARM64]["arch_check"]["machine"] == "x86-64 64-bit"


def test_arch_checks_and_attestations_on_the_page_and_in_the_api(project: Any, alice: Any) -> None:
    build = queue_build(project, alice)
    work_once("w1", FakeBackend())
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    api = build.to_api()
    assert api["platforms"][ARMV7]["arch_check"] == {
        "binary": "/usr/local/bin/app",
        "machine": "ARM 32-bit",
        "ok": True,
    }
    assert {(a["platform"], a["kinds"]) for a in api["attestations"]} == {
        (p, "provenance") for p in PLATFORM_DIGESTS
    }
    client = Client()
    client.force_login(alice)
    page = client.get(f"/builds/{build.pk}/").content.decode()
    assert 'data-arch-ok="true"' in page and "is AArch64 64-bit" in page
    assert 'id="build-attestations"' in page and ">provenance<" in page
    # The ledger's page lists them apart: no unknown/unknown among the platforms.
    record = ManifestRecord.objects.get(build=build)
    ledger_page = client.get(f"/manifests/{record.pk}/").content.decode()
    platforms_table = ledger_page.split('id="platforms"')[1].split("</table>")[0]
    assert "unknown" not in platforms_table and PLATFORM_DIGESTS[ARM64] in platforms_table
    attestations_table = ledger_page.split('id="attestations"')[1].split("</table>")[0]
    assert "provenance" in attestations_table and ARM64 in attestations_table


def test_a_merge_that_loses_the_runs_attestations_fails(project: Any, alice: Any) -> None:
    second_node(image_store="containerd")

    class Lossy(FakeBackend):
        def read_index(self, ref: Any, digest: str, tick: Any) -> IndexSummary:
            summary = super().read_index(ref, digest, tick)
            if digest == INDEX_DIGEST:  # the merged index
                summary.attestations = []
            return summary

    build = queue_build(project, alice, strategy="native")
    work_once("w1", Lossy())
    build.refresh_from_db()
    assert build.state == Build.State.FAILED and build.fault == Build.Fault.SYSTEM
    assert "lost 1 attestation manifest(s)" in build.reason


def test_provenance_and_sbom_where_the_engine_can_attest(
    project: Any, alice: Any, settings: Any
) -> None:
    settings.PORTAL_SBOM_GENERATOR = "docker/buildkit-syft-scanner:1"
    second_node(image_store="containerd")
    build = queue_build(project, alice, strategy="native")
    backend = FakeBackend()
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    scanner = "localhost:5000/docker/buildkit-syft-scanner:1"  # through the mirror's registry
    assert scanner in backend.base_reads
    flags = {
        s.docker_host: [a for a in s.argv() if a.startswith(("--prov", "--sbom"))]
        for s in backend.specs
    }
    assert flags == {
        "tcp://127.0.0.1:9": ["--provenance=mode=max", f"--sbom=generator={scanner}"],
        "unix:///var/run/docker.sock": [],  # a classic image store cannot hold attestations
    }


def test_no_sbom_without_the_setting_or_the_scanner_image(
    project: Any, alice: Any, settings: Any
) -> None:
    second_node(image_store="containerd")
    queue_build(project, alice, strategy="native")
    backend = FakeBackend()
    work_once("w1", backend)
    assert any(a == "--provenance=mode=max" for s in backend.specs for a in s.argv())
    assert all(not a.startswith("--sbom") for s in backend.specs for a in s.argv())
    settings.PORTAL_SBOM_GENERATOR = "docker/buildkit-syft-scanner:1"
    backend = FakeBackend()
    backend.base_images = {"localhost:5000/docker/buildkit-syft-scanner:1": {ARM64}}
    build = queue_build(project, alice, strategy="native")
    work_once("w1", backend)
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    assert all(not a.startswith("--sbom") for s in backend.specs for a in s.argv())
    assert build.log_lines.filter(text__contains="no SBOM: the scanner image").exists()


# --- what the image says about itself ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:token@git.example.com/a/b.git", "https://git.example.com/a/b.git"),
        ("https://a@b:c@git.example.com/a/b.git", "https://git.example.com/a/b.git"),
        ("ssh://git@git.example.com:2222/a/b.git", "ssh://git.example.com:2222/a/b.git"),
        ("https://git.example.com/a/b@2.git", "https://git.example.com/a/b@2.git"),
        ("file:///srv/git/hello.git", "file:///srv/git/hello.git"),
    ],
)
def test_the_source_label_carries_no_credentials(url: str, shown: str) -> None:
    assert without_userinfo(url) == shown


def test_labels_name_the_ssh_source_without_its_user(project: Any, alice: Any) -> None:
    project.git_url = "ssh://git@git.example.com/alpha/hello.git"
    project.save()
    queue_build(project, alice)
    backend = FakeBackend()
    work_once("w1", backend)
    assert backend.spec is not None
    assert backend.spec.labels["org.opencontainers.image.source"] == (
        "ssh://git.example.com/alpha/hello.git"
    )
