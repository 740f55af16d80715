"""Builder nodes: the default "local" node, health checks and emulators (choosing nodes for a
build is ``builds.placement``).

Engine facts come from the Engine API through docker-py; BuildKit facts (version, platforms the
builder can target, natively or through binfmt emulators) from `docker buildx inspect`, which is
the one place that knows them for the node's default builder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
from django.conf import settings
from django.utils import timezone

from builds import registry
from builds.dockerhost import cert_dir, parse_endpoint
from builds.models import BuilderNode
from builds.models.nodes import known_buildkit_version
from builds.proc import docker_cli_env
from portal.grammar import InvalidValue
from portal.grammar.platform import normalize_platform

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"
ENGINE_API_VERSION = "1.41"  # Docker 20.10 and newer
# What `docker info` calls an engine that keeps its images in containerd.
CONTAINERD_SNAPSHOTTER = "io.containerd.snapshotter.v1"


def ensure_local_node() -> BuilderNode | None:
    """Register the local engine as node "local" when no node exists yet."""
    if BuilderNode.objects.exists():
        return None
    endpoint = os.environ.get("DOCKER_HOST") or DEFAULT_ENDPOINT
    node, _ = BuilderNode.objects.get_or_create(name="local", defaults={"endpoint": endpoint})
    return node


def docker_env(node: BuilderNode, certs: Path | None) -> dict[str, str]:
    """Environment for the docker CLI talking to this node (TLS files from cert_dir)."""
    env = {"DOCKER_HOST": node.endpoint}
    if certs is not None:
        env |= {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs)}
    return env


def docker_client(node: BuilderNode, certs: Path | None, timeout: int = 15) -> docker.DockerClient:
    tls: docker.tls.TLSConfig | bool = False
    base_url = node.endpoint
    if certs is not None:
        tls = docker.tls.TLSConfig(
            client_cert=(str(certs / "cert.pem"), str(certs / "key.pem")),
            ca_cert=str(certs / "ca.pem"),
            verify=True,
        )
        base_url = node.endpoint.replace("tcp://", "https://", 1)
    # A fixed API version: "auto" would connect inside the constructor, before trust_env is
    # off, and requests lets REQUESTS_CA_BUNDLE (and proxy variables) override the node's CA.
    client = docker.DockerClient(
        base_url=base_url, tls=tls, timeout=timeout, version=ENGINE_API_VERSION
    )
    client.api.trust_env = False
    return client


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


def node_cli(
    node: BuilderNode, certs: Path | None, args: list[str], timeout: int = 60
) -> subprocess.CompletedProcess[str]:
    """The docker CLI against the node: its endpoint and TLS files, an argv list."""
    return subprocess.run(
        [settings.PORTAL_DOCKER_CLI, *args],
        env=docker_cli_env() | docker_env(node, certs),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def buildx_inspect(node: BuilderNode, certs: Path | None) -> dict[str, object]:
    proc = node_cli(node, certs, ["buildx", "inspect", "--bootstrap"])
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip() or f"buildx inspect exited {proc.returncode}")
    return parse_inspect(proc.stdout)


def parse_inspect(text: str) -> dict[str, object]:
    """`buildkit` (version) and `platforms` from `docker buildx inspect` output."""
    info: dict[str, object] = {}
    for line in text.splitlines():
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


def binfmt_platforms(root: Path = BINFMT_DIR) -> list[str] | None:
    """Platforms with an enabled emulator registered with the F flag on this machine, or None
    when the kernel's list cannot be read here (binfmt_misc is not mounted in a container).

    BuildKit's own probe misses some (Debian's engine build lists no linux/arm although the
    arm handler runs armhf binaries), so for a node on this machine the kernel is asked too.
    Without F the interpreter cannot be opened inside containers, so such a handler is no use.
    """
    if not (root / "status").is_file():
        return None
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


def _local(node: BuilderNode) -> bool:
    """Whether the node's engine runs on this machine (so its disk and binfmt are ours)."""
    try:
        return parse_endpoint(node.endpoint).loopback
    except InvalidValue:
        return False


def _cli_json(node: BuilderNode, certs: Path | None, *args: str) -> dict[str, Any]:
    proc = node_cli(node, certs, list(args))
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip() or f"docker {args[0]} exited {proc.returncode}")
    data = json.loads(proc.stdout)
    return data if isinstance(data, dict) else {}


def engine_facts(node: BuilderNode, certs: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(version, info) of the node's engine. ssh:// goes through the docker CLI, which uses the
    ssh program with the operator's ssh config as it is (docker-py would need paramiko and
    overrides the configured port); the others through docker-py."""
    if node.endpoint.startswith("ssh://"):
        version = _cli_json(node, certs, "version", "--format={{json .Server}}")
        return version, _cli_json(node, certs, "info", "--format={{json .}}")
    client = docker_client(node, certs)
    try:
        return client.version(), client.info()
    finally:
        client.close()


def image_store(info: dict[str, Any]) -> str:
    """ "containerd" when the engine keeps its images in containerd (`docker info` then names
    the snapshotter as DriverStatus driver-type), else its classic storage driver."""
    status = info.get("DriverStatus") or []
    if ["driver-type", CONTAINERD_SNAPSHOTTER] in [list(pair) for pair in status]:
        return "containerd"
    return str(info.get("Driver", ""))


def _probe(node: BuilderNode, certs: Path | None) -> None:
    if node.kind == BuilderNode.Kind.BUILDKIT:
        from builds import buildkitnodes  # it builds on this module (parse_inspect)

        buildkitnodes.probe(node)
        return
    version, info = engine_facts(node, certs)
    node.engine_version = str(version.get("Version", ""))
    native = normalize_platform(f"{version.get('Os', 'linux')}/{version.get('Arch', '')}")
    inspect = buildx_inspect(node, certs)
    node.buildkit_version = known_buildkit_version(str(inspect.get("buildkit", "")))
    node.image_store = image_store(info)
    targets = list(inspect.get("platforms", []))  # type: ignore[call-overload]
    family = native.split("/")[1]
    node.native_platforms = [p for p in targets if p.split("/")[1] == family] or [native]
    node.free_disk_bytes = None
    if _local(node):
        # BuildKit probes emulators once, when the engine starts; the kernel knows now (a
        # handler lost or installed since is seen at once). A portal in a container, given the
        # engine's socket, cannot read the kernel's list and keeps BuildKit's.
        kernel = binfmt_platforms()
        if kernel is not None:
            targets = node.native_platforms + [p for p in kernel if p not in node.native_platforms]
        root = str(info.get("DockerRootDir", ""))
        if root and Path(root).is_dir():
            node.free_disk_bytes = shutil.disk_usage(root).free
    node.emulated_platforms = [p for p in targets if p not in node.native_platforms]


def check_node(node: BuilderNode, repair: bool = True) -> BuilderNode:
    """Ask the node's engine and BuildKit what they are; record reachable or the error.

    Emulators an admin installed and the node no longer has (binfmt registrations do not
    survive a reboot) are reported, and reinstalled when the node has repair_emulators on.
    """
    node.last_checked_at = timezone.now()
    try:
        with cert_dir(node.tls()) as certs:
            _probe(node, certs)
        node.reachable = True
        node.last_error = ""
        missing = node.missing_emulators
        if missing and repair and node.repair_emulators:
            log.warning("node %s lost emulators %s; reinstalling", node.name, missing)
            result = install_emulators(node, missing)  # re-checks and saves
            if result.code != 0:
                node.last_error = f"reinstalling emulators failed: {result.output[-500:]}"
                node.save(update_fields=["last_error"])
            return node
        if missing:
            node.last_error = f"emulators missing (lost on reboot?): {', '.join(missing)}"
    except Exception as exc:  # any failure means: not usable now, say why
        node.reachable = False
        node.last_error = re.sub(r"\s+", " ", str(exc))[:1000]
        log.warning("node %s unreachable: %s", node.name, node.last_error)
    # Only what a check learns: staff may have drained or changed the node meanwhile.
    node.save(update_fields=HEALTH_FIELDS)
    return node


HEALTH_FIELDS = [
    "reachable",
    "engine_version",
    "buildkit_version",
    "image_store",
    "native_platforms",
    "emulated_platforms",
    "free_disk_bytes",
    "last_checked_at",
    "last_error",
]


# platform -> the name tonistiigi/binfmt's --install takes
BINFMT_NAMES = {
    "linux/arm64": "arm64",
    "linux/arm/v7": "arm",
    "linux/arm/v6": "arm",
    "linux/arm/v5": "arm",
    "linux/riscv64": "riscv64",
    "linux/ppc64le": "ppc64le",
    "linux/s390x": "s390x",
    "linux/386": "386",
    "linux/amd64": "amd64",
}


def binfmt_image() -> str:
    """The installer image, through the mirror's registry when a mirror is set."""
    return registry.via_mirror(settings.PORTAL_BINFMT_IMAGE)


@dataclass
class CommandResult:
    command: str  # as an admin would type it
    code: int
    output: str


def install_emulators(node: BuilderNode, platforms: list[str]) -> CommandResult:
    """`docker run --privileged --rm <binfmt> --install <names>` on the node, then a re-check."""
    if node.kind == BuilderNode.Kind.BUILDKIT:
        raise InvalidValue(
            "node",
            node.name,
            "a BuildKit daemon runs no containers: install emulators on its host "
            "(tonistiigi/binfmt --install), then check the node",
        )
    names: list[str] = []
    for item in platforms:
        platform = normalize_platform(item)
        if platform not in BINFMT_NAMES:
            raise InvalidValue("platform", item, "no emulator is known for it")
        if BINFMT_NAMES[platform] not in names:
            names.append(BINFMT_NAMES[platform])
    # The operator's image and validated names: nothing a user typed. The docker CLI runs it,
    # so what the admin sees is the argv that ran, on any kind of endpoint.
    argv = ["run", "--privileged", "--rm", "--network=none", binfmt_image()]
    argv += ["--install", ",".join(names)]
    command = shlex.join(["docker", *argv])
    try:
        with cert_dir(node.tls()) as certs:
            proc = node_cli(node, certs, argv, timeout=300)
        result = CommandResult(command, proc.returncode, (proc.stdout + proc.stderr).strip())
    except (OSError, subprocess.TimeoutExpired) as exc:
        result = CommandResult(command, 1, str(exc))
    if result.code == 0:
        wanted = node.wanted_emulators + [p for p in platforms if p not in node.wanted_emulators]
        node.wanted_emulators = [normalize_platform(p) for p in wanted]
        node.save(update_fields=["wanted_emulators"])
    check_node(node, repair=False)
    return result
