"""Index checks on a real index recorded from the registry, and imagetools through a fake CLI."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from builds.registry import (
    RegistryError,
    check_platforms,
    fetch_manifest,
    summarize_index,
    tag_manifest,
)
from portal.grammar.reference import parse_reference

DATA = Path(__file__).parent / "data"
BODY = (DATA / "index-go-hello-3platforms.json").read_bytes()
DIGEST = "sha256:" + hashlib.sha256(BODY).hexdigest()


def test_platforms_and_attestations_are_kept_apart() -> None:
    summary = summarize_index(BODY, DIGEST)
    assert sorted(summary.platforms) == ["linux/amd64", "linux/arm/v7", "linux/arm64"]
    assert "unknown/unknown" not in summary.platforms
    assert len(summary.attestations) == 3
    assert {a["for"] for a in summary.attestations} == set(summary.platforms.values())
    check_platforms(summary, ["linux/amd64", "linux/arm64", "linux/arm/v7"])


def test_missing_or_extra_platforms_fail_the_check() -> None:
    summary = summarize_index(BODY, DIGEST)
    with pytest.raises(RegistryError, match="missing linux/riscv64; unexpected linux/arm/v7"):
        check_platforms(summary, ["linux/amd64", "linux/arm64", "linux/riscv64"])


def test_a_single_manifest_is_not_an_index() -> None:
    manifest = json.dumps({"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []})
    with pytest.raises(RegistryError, match="not a multi-platform index"):
        summarize_index(manifest.encode(), "sha256:" + "0" * 64)


def test_duplicate_platforms_are_refused() -> None:
    data = json.loads(BODY)
    data["manifests"].append(dict(data["manifests"][0], digest="sha256:" + "9" * 64))
    with pytest.raises(RegistryError, match="lists linux/amd64 twice"):
        summarize_index(json.dumps(data).encode(), DIGEST)


@pytest.fixture
def fake_docker(tmp_path: Path, settings: Any) -> Path:
    """A stand-in docker CLI that logs its argv and prints the recorded index."""
    log = tmp_path / "argv.log"
    script = tmp_path / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {log}\n'
        f'if [ "$3" = inspect ]; then cat {DATA / "index-go-hello-3platforms.json"}; fi\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    settings.PORTAL_DOCKER_CLI = str(script)
    return log


def test_fetch_checks_the_digest_of_what_was_served(fake_docker: Path) -> None:
    ref = parse_reference("localhost:5000/alpha/hello")
    assert fetch_manifest(ref, DIGEST) == BODY
    with pytest.raises(RegistryError, match="registry served"):
        fetch_manifest(ref, "sha256:" + "1" * 64)
    assert fake_docker.read_text().splitlines()[0] == (
        f"buildx imagetools inspect --raw -- localhost:5000/alpha/hello@{DIGEST}"
    )


def test_tagging_copies_the_index_by_digest(fake_docker: Path) -> None:
    tag_manifest(parse_reference("localhost:5000/alpha/hello"), DIGEST, "stable")
    calls = fake_docker.read_text().splitlines()
    assert calls[0] == (
        "buildx imagetools create --tag=localhost:5000/alpha/hello:stable -- "
        f"localhost:5000/alpha/hello@{DIGEST}"
    )
    assert calls[1] == "buildx imagetools inspect --raw -- localhost:5000/alpha/hello:stable"
