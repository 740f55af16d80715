"""Builder nodes: the default "local" node, choosing a node for a build, and health checks.

Engine facts come from the Engine API through docker-py; BuildKit facts (version, platforms the
builder can target, natively or through binfmt emulators) from `docker buildx inspect`, which is
the one place that knows them for the node's default builder.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from datetime import timedelta
from pathlib import Path

import docker
from django.conf import settings
from django.utils import timezone

from builds.models import Build, BuilderNode
from builds.refs import InvalidValue, normalize_platform

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"


def ensure_local_node() -> BuilderNode | None:
    """Register the local engine as node "local" when no node exists yet."""
    if BuilderNode.objects.exists():
        return None
    endpoint = os.environ.get("DOCKER_HOST") or DEFAULT_ENDPOINT
    node, _ = BuilderNode.objects.get_or_create(name="local", defaults={"endpoint": endpoint})
    return node


def node_for_build(build: Build) -> BuilderNode | None:
    project_node = build.project.builder_node
    if project_node is not None:
        return project_node if project_node.enabled else None
    ensure_local_node()
    return BuilderNode.objects.filter(enabled=True).order_by("pk").first()


def _platforms(text: str) -> list[str]:
    result = []
    for item in text.split(","):
        item = item.strip().rstrip("*").strip()
        if not item:
            continue
        try:
            platform = normalize_platform(item)
        except InvalidValue:
            continue
        if platform not in result:
            result.append(platform)
    return result


def buildx_inspect(endpoint: str) -> dict[str, object]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    env["DOCKER_HOST"] = endpoint
    proc = subprocess.run(
        [settings.PORTAL_DOCKER_CLI, "buildx", "inspect", "--bootstrap"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip() or f"buildx inspect exited {proc.returncode}")
    info: dict[str, object] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key in ("buildkit version", "buildkit") and value:
            info["buildkit"] = value
        elif key == "platforms":
            info["platforms"] = _platforms(value)
    return info


def check_due_nodes(every: int) -> list[BuilderNode]:
    """Check nodes not checked for `every` seconds. Several workers may call this: each node is
    claimed with a conditional UPDATE on last_checked_at, so only one of them checks it."""
    ensure_local_node()
    now = timezone.now()
    cutoff = now - timedelta(seconds=every)
    checked = []
    for node in BuilderNode.objects.filter(enabled=True):
        if node.last_checked_at is not None and node.last_checked_at > cutoff:
            continue
        claimed = BuilderNode.objects.filter(
            pk=node.pk, last_checked_at=node.last_checked_at
        ).update(last_checked_at=now)
        if claimed:
            checked.append(check_node(node))
    return checked


# binfmt_misc handler name -> the platforms its emulator runs.
QEMU_HANDLERS = {
    "qemu-aarch64": ["linux/arm64"],
    "qemu-arm": ["linux/arm/v7", "linux/arm/v6"],
    "qemu-riscv64": ["linux/riscv64"],
    "qemu-ppc64le": ["linux/ppc64le"],
    "qemu-s390x": ["linux/s390x"],
    "qemu-i386": ["linux/386"],
    "qemu-x86_64": ["linux/amd64"],
}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


def binfmt_platforms(root: Path = BINFMT_DIR) -> list[str]:
    """Platforms with an enabled emulator registered with the F flag on this machine.

    BuildKit's own probe misses some (Debian's engine build lists no linux/arm although the
    arm handler runs armhf binaries), so for a node on this machine the kernel is asked too.
    Without F the interpreter cannot be opened inside containers, so such a handler is no use.
    """
    found: list[str] = []
    for name, platforms in QEMU_HANDLERS.items():
        try:
            entry = (root / name).read_text()
        except OSError:
            continue
        flags = next(
            (ln.split(":", 1)[1] for ln in entry.splitlines() if ln.startswith("flags:")), ""
        )
        if entry.startswith("enabled") and "F" in flags:
            found += [p for p in platforms if p not in found]
    return found


def check_node(node: BuilderNode) -> BuilderNode:
    """Ask the node's engine and BuildKit what they are; record reachable or the error."""
    node.last_checked_at = timezone.now()
    try:
        client = docker.DockerClient(base_url=node.endpoint, timeout=15)
        try:
            version = client.version()
        finally:
            client.close()
        node.engine_version = str(version.get("Version", ""))
        native = normalize_platform(f"{version.get('Os', 'linux')}/{version.get('Arch', '')}")
        inspect = buildx_inspect(node.endpoint)
        node.buildkit_version = str(inspect.get("buildkit", ""))
        targets = list(inspect.get("platforms", []))  # type: ignore[call-overload]
        family = native.split("/")[1]
        node.native_platforms = [p for p in targets if p.split("/")[1] == family] or [native]
        if node.endpoint.startswith("unix://"):
            targets += [p for p in binfmt_platforms() if p not in targets]
        node.emulated_platforms = [p for p in targets if p not in node.native_platforms]
        node.reachable = True
        node.last_error = ""
    except Exception as exc:  # any failure means: not usable now, say why
        node.reachable = False
        node.last_error = re.sub(r"\s+", " ", str(exc))[:1000]
        log.warning("node %s unreachable: %s", node.name, node.last_error)
    node.save()
    return node
