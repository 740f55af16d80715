"""Read pushed indexes back from a registry (OCI distribution API) and check them.

Hand-written on urllib because it is two GET requests plus the anonymous token dance; the digest
of every body is verified, so what the ledger records is what the registry serves.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from builds.refs import ImageRef

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ATTESTATION_TYPE = "attestation-manifest"


class RegistryError(Exception):
    pass


@dataclass
class IndexSummary:
    digest: str
    media_type: str
    platforms: dict[str, str] = field(default_factory=dict)
    attestations: list[dict[str, str]] = field(default_factory=list)


def _is_plain_http(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if host in settings.PORTAL_INSECURE_REGISTRIES or name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _base_url(domain: str) -> str:
    if domain == "docker.io":
        domain = "registry-1.docker.io"
    scheme = "http" if _is_plain_http(domain) else "https"
    return f"{scheme}://{domain}"


def _bearer_token(challenge: str, repository_path: str, actions: str) -> str | None:
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.get("realm")
    if not challenge.lower().startswith("bearer") or not realm:
        return None
    query = {"scope": params.get("scope", f"repository:{repository_path}:{actions}")}
    if "service" in params:
        query["service"] = params["service"]
    url = f"{realm}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (realm from registry)
        data = json.load(response)
    token = data.get("token") or data.get("access_token")
    return str(token) if token else None


def _manifest_request(
    ref: ImageRef, reference: str, *, body: bytes | None = None, media_type: str = ""
) -> tuple[bytes, Any]:
    """GET (or PUT, with a body) /v2/<path>/manifests/<reference>; returns (body, headers)."""
    url = f"{_base_url(ref.domain)}/v2/{ref.path}/manifests/{reference}"
    if body is None:
        request = urllib.request.Request(
            url, headers={"Accept": ", ".join(INDEX_TYPES + MANIFEST_TYPES)}
        )
    else:
        request = urllib.request.Request(
            url, data=body, method="PUT", headers={"Content-Type": media_type}
        )
    what = f"{ref.repository}:{reference}" if body is not None else f"{ref.repository}@{reference}"
    try:
        try:
            response = urllib.request.urlopen(request, timeout=30)  # noqa: S310 (http/https only)
        except urllib.error.HTTPError as exc:
            challenge = exc.headers.get("WWW-Authenticate", "") if exc.code == 401 else ""
            actions = "pull" if body is None else "pull,push"
            token = _bearer_token(challenge, ref.path, actions) if challenge else None
            if token is None:
                raise
            request.add_header("Authorization", f"Bearer {token}")
            response = urllib.request.urlopen(request, timeout=30)  # noqa: S310
        with response:
            return response.read(), response.headers
    except urllib.error.HTTPError as exc:
        raise RegistryError(f"registry answered {exc.code} for {what}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryError(f"registry {ref.domain} unreachable: {exc}") from exc


def fetch_manifest(ref: ImageRef, reference: str) -> tuple[bytes, str]:
    """GET a manifest or index by tag or digest; returns (body, media type)."""
    body, headers = _manifest_request(ref, reference)
    media_type = headers.get("Content-Type", "").split(";")[0].strip()
    if reference.startswith("sha256:"):
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
        if actual != reference:
            raise RegistryError(f"registry served {actual} for {reference}")
    return body, media_type


def tag_manifest(ref: ImageRef, digest: str, tag: str) -> None:
    """Point another tag at an already pushed manifest: the same bytes, so the same digest.

    buildx pushes every --tag at once, and the filesystem registry then races on the shared
    revision link ("invalid checksum digest format"); one push plus these PUTs does not.
    """
    body, media_type = fetch_manifest(ref, digest)
    _, headers = _manifest_request(ref, tag, body=body, media_type=media_type)
    served = headers.get("Docker-Content-Digest", digest)
    if served != digest:
        raise RegistryError(
            f"registry stored {served} for {ref.repository}:{tag}, expected {digest}"
        )


def platform_of(descriptor: dict[str, Any]) -> str:
    p = descriptor.get("platform") or {}
    parts = [p.get("os", "unknown"), p.get("architecture", "unknown")]
    if p.get("variant"):
        parts.append(p["variant"])
    return "/".join(parts)


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


def read_index(ref: ImageRef, digest: str) -> IndexSummary:
    body, media_type = fetch_manifest(ref, digest)
    return summarize_index(body, digest, media_type)


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
