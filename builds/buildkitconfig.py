"""What a multi-node builder's BuildKit daemons are told: the image they run and their
buildkitd.toml, so they reach the registries the portal pushes to without a manual step.

The classic failures of a `docker-container` builder are a BuildKit container that cannot reach
`localhost:5000` (its own loopback on a bridge network) and one that speaks HTTPS to a plain
HTTP or privately signed registry. Crossport answers both from the operator's settings:

- `[registry."<host>"] http = true` for PORTAL_BUILDKIT_HTTP_REGISTRIES, plus every loopback
  registry the portal may contact (PORTAL_OUTBOUND_ALLOW, the base-image mirror);
- `ca = ["<path>"]` for PORTAL_BUILDKIT_REGISTRY_CA (host=path pairs);
- `[registry."docker.io"] mirrors = [...]` when PORTAL_BASE_IMAGE_MIRROR is set;
- `--driver-opt=network=host` where the engine has no bridge network, or a registry is on
  loopback (only the host's network reaches it).

Everything here comes from settings, never from a user: hosts are still checked, and strings
are written as TOML basic strings (JSON's escaping is TOML's).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from builds.registry import via_mirror
from portal.private import private_dir

_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def image() -> str:
    """The BuildKit image for `--driver-opt=image=...` (no comma: buildx splits options on it)."""
    name = via_mirror(settings.PORTAL_BUILDKIT_IMAGE)
    if not name or "," in name or "=" in name or name.startswith("-"):
        raise ImproperlyConfigured(f"PORTAL_BUILDKIT_IMAGE is not an image name: {name!r}")
    return name


def _registry_host(entry: str, setting: str) -> str:
    host = entry.strip().lower()
    if not _HOST.fullmatch(host):
        raise ImproperlyConfigured(f"{setting}: {entry!r} is not a registry host[:port]")
    return host


def is_loopback(host: str) -> bool:
    name = host[1 : host.index("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def mirror_host() -> str:
    """The registry of PORTAL_BASE_IMAGE_MIRROR (`localhost:5000/library` -> `localhost:5000`)."""
    mirror = settings.PORTAL_BASE_IMAGE_MIRROR
    return _registry_host(mirror.split("/")[0], "PORTAL_BASE_IMAGE_MIRROR") if mirror else ""


def http_registries() -> list[str]:
    """Registries spoken to over plain HTTP: the listed ones and the loopback ones."""
    hosts = [
        _registry_host(h, "PORTAL_BUILDKIT_HTTP_REGISTRIES")
        for h in settings.PORTAL_BUILDKIT_HTTP_REGISTRIES
    ]
    # Outbound entries may be CIDRs or bare hosts: only host:port ones name a registry.
    allowed = [h.strip().lower() for h in settings.PORTAL_OUTBOUND_ALLOW if "/" not in h]
    known = [h for h in [*allowed, mirror_host()] if h and _HOST.fullmatch(h)]
    hosts += [h for h in known if is_loopback(h) and h not in ca_registries()]
    return list(dict.fromkeys(hosts))


def ca_registries() -> dict[str, str]:
    """host -> the CA certificate file that signs it (absolute paths only)."""
    found = {}
    for host, path in settings.PORTAL_BUILDKIT_REGISTRY_CA.items():
        if not Path(path).is_absolute():
            raise ImproperlyConfigured(f"PORTAL_BUILDKIT_REGISTRY_CA: {path!r} is not absolute")
        found[_registry_host(host, "PORTAL_BUILDKIT_REGISTRY_CA")] = str(path)
    return found


def needs_host_network(engine_has_bridge: bool) -> bool:
    return not engine_has_bridge or any(is_loopback(h) for h in http_registries())


def _quoted(text: str) -> str:
    return json.dumps(text)


def render() -> str:
    """buildkitd.toml for every node of a builder."""
    lines = ["# Written by Crossport (builds/buildkitconfig.py) from the portal's settings."]
    mirror = mirror_host()
    if mirror:
        # A mirror holds Docker Hub's repositories under the same names (library/golang...).
        lines += ['[registry."docker.io"]', f"  mirrors = [{_quoted(mirror)}]"]
    http = http_registries()
    cas = ca_registries()
    for host in dict.fromkeys([*http, *cas]):
        lines.append(f"[registry.{_quoted(host)}]")
        if host in http:
            lines.append("  http = true")
        if host in cas:
            lines.append(f"  ca = [{_quoted(cas[host])}]")
    return "\n".join(lines) + "\n"


def config_path(builder: str) -> Path:
    return private_dir(Path(settings.DATA_DIR) / "buildkit") / f"{builder}.toml"


def write(builder: str) -> Path:
    """The builder's buildkitd.toml (0600: it names the operator's registries), rewritten."""
    path = config_path(builder)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(render())
    return path


def create_args(builder: str, engine_has_bridge: bool) -> list[str]:
    """The `buildx create` options that carry this configuration."""
    args = [f"--driver-opt=image={image()}"]
    if needs_host_network(engine_has_bridge):
        args.append("--driver-opt=network=host")
    return [*args, f"--buildkitd-config={write(builder)}"]
