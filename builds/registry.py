"""Read pushed indexes back from the registry and check them; add tags to a pushed index.

Registry access goes through the docker CLI (`docker buildx imagetools`), the same choke point
as the build itself: it uses the same credentials (DOCKER_CONFIG) and registry settings, and no
registry-supplied URL (auth realms, redirects) is fetched by the portal's own code. Every
reference's registry passes the outbound guard before the CLI runs, and the CLI reaches
registries through the portal's egress proxy (`builds.egress`), which checks every connection it
makes (realms and redirects too) and pins it to the checked address. Failures are reported in a
few plain words (not found, unauthorized, unreachable), never the CLI's transport text; that goes
to the portal's log. The digest of every body is verified, so what the ledger records is what
the registry serves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from builds import egress
from builds.proc import ProcessTimeout, docker_cli_env, run
from portal import outbound
from portal.grammar.platform import normalize_platform
from portal.grammar.reference import ImageRef, parse_reference

Tick = Callable[[], bool] | None
log = logging.getLogger(__name__)

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
ATTESTATION_TYPE = "attestation-manifest"
TIMEOUT = 120


class RegistryError(Exception):
    pass


# The CLI's last error line, mapped to what a team is told (first match wins). The words
# "not found" and "unauthorized" are what callers test for.
_FAILURES = [
    (re.compile(r"not found|manifest unknown|name unknown|\b404\b", re.I), "not found"),
    (
        re.compile(
            r"401 Unauthorized|no basic auth credentials|authorization failed|unauthorized|"
            r"denied|\b403\b",
            re.I,
        ),
        "unauthorized: the registry refused the login (or anonymous access)",
    ),
    (
        re.compile(r"x509|certificate|tls:", re.I),
        "the registry's TLS certificate is not trusted by the portal",
    ),
]
UNREACHABLE = "the registry could not be reached, or did not answer as a registry"


def via_mirror(image: str) -> str:
    """An operator's Docker Hub image (`tonistiigi/binfmt`) through the base-image mirror's
    registry when a mirror is set; a name with a registry host stays as it is."""
    mirror = settings.PORTAL_BASE_IMAGE_MIRROR
    first = image.split("/")[0]
    if mirror and "/" in image and "." not in first and ":" not in first:
        return f"{mirror.split('/')[0]}/{image}"
    return image


def check_destinations(args: tuple[str, ...]) -> None:
    """Every reference an imagetools call names (after `--`, and `--tag=`) passes the guard."""
    positional = args[args.index("--") + 1 :] if "--" in args else ()
    tags = [a.removeprefix("--tag=") for a in args if a.startswith("--tag=")]
    for text in [*positional, *tags]:
        check_registry(parse_reference(text).domain, shown=text)


def check_registry(domain: str, shown: str = "") -> None:
    """The registry serving `domain` passes the outbound guard (raises outbound.Refused)."""
    host, port = outbound.registry_address(domain)
    outbound.resolve(host, port, kind="image reference", shown=shown or domain)


# The DOCKER_CONFIG folder (with a team's registry logins) for the build or merge running in
# this thread; set with `using_config`.
DOCKER_CONFIG: ContextVar[str] = ContextVar("DOCKER_CONFIG", default="")


@contextmanager
def using_config(folder: str) -> Iterator[None]:
    token = DOCKER_CONFIG.set(folder)
    try:
        yield
    finally:
        DOCKER_CONFIG.reset(token)


@dataclass
class IndexSummary:
    digest: str
    media_type: str
    platforms: dict[str, str] = field(default_factory=dict)
    attestations: list[dict[str, str]] = field(default_factory=list)


def imagetools(*args: str, env: dict[str, str] | None = None, tick: Tick = None) -> bytes:
    """Run `docker buildx imagetools ARGS`. Raises outbound.Refused before running it when a
    reference's registry is not allowed, RegistryError when it fails."""
    check_destinations(args)
    cmd = [settings.PORTAL_DOCKER_CLI, "buildx", "imagetools", *args]
    base = docker_cli_env(DOCKER_CONFIG.get()) | egress.proxy_env()
    try:
        proc = run(cmd, env={**base, **(env or {})}, timeout=TIMEOUT, tick=tick)
    except ProcessTimeout as exc:
        raise RegistryError(f"imagetools {args[0]}: {exc}") from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip()
        log.info("imagetools %s failed (exit %s): %s", args[0], proc.returncode, detail[-2000:])
        last = detail.splitlines()[-1] if detail else ""
        said = next((text for pattern, text in _FAILURES if pattern.search(last)), UNREACHABLE)
        raise RegistryError(f"imagetools {args[0]} failed: {said}")
    return proc.stdout


def fetch_manifest(
    ref: ImageRef, digest: str, env: dict[str, str] | None = None, tick: Tick = None
) -> bytes:
    """The raw bytes of a manifest or index, checked against its digest."""
    if not digest.startswith("sha256:"):
        raise RegistryError(f"not a sha256 digest: {digest}")
    body = imagetools("inspect", "--raw", "--", f"{ref.repository}@{digest}", env=env, tick=tick)
    actual = "sha256:" + hashlib.sha256(body).hexdigest()
    if actual != digest:
        raise RegistryError(f"registry served {actual} for {digest}")
    return body


def tag_manifest(
    ref: ImageRef, digest: str, tag: str, env: dict[str, str] | None = None, tick: Tick = None
) -> None:
    """Point another tag at a pushed index: a copy of the same bytes, so the same digest.

    buildx pushes every --tag at once, and the filesystem registry then races on the shared
    revision link ("invalid checksum digest format"); one push plus these copies does not.
    """
    target = f"{ref.repository}:{tag}"
    imagetools("create", f"--tag={target}", "--", f"{ref.repository}@{digest}", env=env, tick=tick)
    body = imagetools("inspect", "--raw", "--", target, env=env, tick=tick)
    served = "sha256:" + hashlib.sha256(body).hexdigest()
    if served != digest:
        raise RegistryError(f"{target} points to {served} after tagging, not {digest}")


def merge_index(
    ref: ImageRef,
    sources: list[str],
    tag: str,
    annotations: dict[str, str],
    env: dict[str, str] | None = None,
    tick: Tick = None,
) -> str:
    """Push one index made of the sources' manifests (`imagetools create`); returns its digest.

    Sources that are indexes themselves (buildx adds attestations) contribute their manifests.
    """
    target = f"{ref.repository}:{tag}"
    args = ["create", f"--tag={target}"]
    args += [f"--annotation=index:{k}={v}" for k, v in sorted(annotations.items())]
    imagetools(*args, "--", *(f"{ref.repository}@{d}" for d in sources), env=env, tick=tick)
    body = imagetools("inspect", "--raw", "--", target, env=env, tick=tick)
    return "sha256:" + hashlib.sha256(body).hexdigest()


def current_digest(
    ref: ImageRef, tag: str, env: dict[str, str] | None = None, tick: Tick = None
) -> str | None:
    """The digest the registry serves for a tag now, or None when the tag is gone."""
    try:
        body = imagetools("inspect", "--raw", "--", f"{ref.repository}:{tag}", env=env, tick=tick)
    except RegistryError as exc:
        if "not found" in str(exc).lower():
            return None
        raise
    return "sha256:" + hashlib.sha256(body).hexdigest()


def tag_exists(
    ref: ImageRef, tag: str, env: dict[str, str] | None = None, tick: Tick = None
) -> bool:
    try:
        imagetools("inspect", "--raw", "--", f"{ref.repository}:{tag}", env=env, tick=tick)
    except RegistryError as exc:
        if "not found" in str(exc).lower():
            return False
        raise
    return True


def platform_of(descriptor: dict[str, Any]) -> str:
    p = descriptor.get("platform") or {}
    parts = [p.get("os", "unknown"), p.get("architecture", "unknown")]
    if p.get("variant"):
        parts.append(p["variant"])
    return "/".join(parts)


def config_platform(config: dict[str, Any]) -> str:
    """os/arch[/variant] of an image config (a single-platform image has no index to say it)."""
    parts = [config.get("os") or "", config.get("architecture") or ""]
    if config.get("variant"):
        parts.append(config["variant"])
    return normalize_platform("/".join(parts))


def image_config(ref: ImageRef, pointer: str, tick: Tick = None) -> dict[str, Any]:
    """The config of a single-platform image; `pointer` is ":tag" or "@digest"."""
    body = imagetools(
        "inspect", "--format={{json .Image}}", "--", f"{ref.repository}{pointer}", tick=tick
    )
    data = json.loads(body)
    if not isinstance(data, dict):
        raise RegistryError(f"{ref.repository}{pointer} has no image config")
    return data


def summarize_index(body: bytes, digest: str, media_type: str = "") -> IndexSummary:
    """Split an index into platform manifests and attestation manifests."""
    data = json.loads(body)
    media_type = data.get("mediaType") or media_type
    if media_type not in INDEX_TYPES or "manifests" not in data:
        raise RegistryError(
            f"{digest} is not a multi-platform index ({media_type or 'no media type'})"
        )
    summary = IndexSummary(digest=digest, media_type=media_type)
    for entry in data["manifests"]:
        annotations = entry.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") == ATTESTATION_TYPE:
            summary.attestations.append(
                {
                    "digest": entry["digest"],
                    "for": annotations.get("vnd.docker.reference.digest", ""),
                    "media_type": entry.get("mediaType", ""),
                }
            )
            continue
        platform = platform_of(entry)
        if platform in summary.platforms:
            raise RegistryError(f"index {digest} lists {platform} twice")
        summary.platforms[platform] = entry["digest"]
    return summary


def read_index(
    ref: ImageRef, digest: str, env: dict[str, str] | None = None, tick: Tick = None
) -> IndexSummary:
    return summarize_index(fetch_manifest(ref, digest, env=env, tick=tick), digest)


def predicate_types(ref: ImageRef, digest: str, tick: Tick = None) -> list[str]:
    """What an attestation manifest attests: its layers' in-toto predicate types (SLSA
    provenance, SPDX SBOM...)."""
    manifest = json.loads(fetch_manifest(ref, digest, tick=tick))
    return [
        str(layer["annotations"]["in-toto.io/predicate-type"])
        for layer in manifest.get("layers") or []
        if "in-toto.io/predicate-type" in (layer.get("annotations") or {})
    ]


def check_platforms(summary: IndexSummary, wanted: list[str]) -> None:
    """The index must hold exactly the requested platforms (attestations aside)."""
    have, want = set(summary.platforms), set(wanted)
    if have != want:
        missing = ", ".join(sorted(want - have)) or "none"
        extra = ", ".join(sorted(have - want)) or "none"
        raise RegistryError(
            f"pushed index {summary.digest} has the wrong platforms: "
            f"missing {missing}; unexpected {extra}"
        )
