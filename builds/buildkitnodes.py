"""Standalone BuildKit daemons as builder nodes, what the hosted builders run fleets of: a
`buildkitd` at tcp://host:port with mutual TLS (or a unix:// socket), used through buildx's
`remote` driver.

Each such node has a buildx builder of its own, `crossport-node-<name>`, in the portal's docker
config folder (builds.builders.config_dir), made again at every health check so a changed
endpoint or certificate takes effect. Its TLS files stay beside it (private, 0600), because
buildx reads them at each build, as the docker context store keeps an engine node's. Health is
`docker buildx inspect --bootstrap` on that builder: BuildKit's version and the platforms its
worker offers, its own architecture first (natively), the rest through the host's emulators.
An engine has more to say (version, image store, disk); a bare BuildKit says none of it.
"""

from __future__ import annotations

from pathlib import Path

from builds import builders
from builds.buildx import csv_field
from builds.models import BuilderNode
from builds.models.nodes import known_buildkit_version
from builds.nodes import parse_inspect
from portal.private import private_dir

PREFIX = "crossport-node-"


def builder_for(node: BuilderNode) -> str:
    """The buildx builder that reaches the node: "" for an engine (its default builder)."""
    return f"{PREFIX}{node.name}" if node.kind == BuilderNode.Kind.BUILDKIT else ""


def tls_dir(node: BuilderNode) -> Path:
    return private_dir(builders.config_dir() / "buildkit-tls" / node.name)


def _fail(result: builders.CommandResult) -> RuntimeError:
    lines = [line.strip() for line in result.output.splitlines() if line.strip()]
    return RuntimeError(lines[-1] if lines else f"{result.command} exited {result.code}")


def ensure_builder(node: BuilderNode) -> str:
    """`docker buildx create --driver=remote` for the node (made again: endpoint and TLS as
    they are now). Raises RuntimeError with buildx's reason."""
    name = builder_for(node)
    builders.docker_cli(["buildx", "rm", "--force", "--", name])  # absent the first time
    args = ["buildx", "create", f"--name={name}", "--driver=remote"]
    tls = node.tls()
    if tls is not None:
        folder = tls_dir(node)
        paths = {}
        for file, text in tls.files().items():
            path = folder / file
            path.touch(mode=0o600)
            path.write_text(text)
            paths[file] = path
        opts = [f"cacert={paths['ca.pem']}", f"cert={paths['cert.pem']}"]
        opts.append(f"key={paths['key.pem']}")
        args.append("--driver-opt=" + ",".join(csv_field(o) for o in opts))
    result = builders.docker_cli([*args, "--", node.endpoint])
    if result.code:
        raise _fail(result)
    return name


def probe(node: BuilderNode) -> None:
    """Fill the node's health fields from BuildKit itself (raises when it cannot be reached)."""
    name = ensure_builder(node)
    result = builders.docker_cli(["buildx", "inspect", "--bootstrap", "--", name])
    if result.code:
        raise _fail(result)
    info = parse_inspect(result.output)
    targets: list[str] = list(info.get("platforms", []))  # type: ignore[call-overload]
    if not targets:
        raise RuntimeError(f"BuildKit at {node.endpoint} offers no platform")
    family = targets[0].split("/")[1]
    node.engine_version = ""
    node.image_store = ""
    node.buildkit_version = known_buildkit_version(str(info.get("buildkit", "")))
    node.native_platforms = [p for p in targets if p.split("/")[1] == family]
    node.emulated_platforms = [p for p in targets if p not in node.native_platforms]
    node.free_disk_bytes = None


def forget(node: BuilderNode) -> None:
    """A removed node's builder and TLS files go too."""
    if not builder_for(node):
        return
    builders.docker_cli(["buildx", "rm", "--force", "--", builder_for(node)])
    for path in tls_dir(node).glob("*"):
        path.unlink()
    tls_dir(node).rmdir()
