"""Named multi-node buildx builders, managed with the article's commands through python-on-whales.

A builder joins nodes: one docker context per node (`crossport-<node>`, TLS material copied
into the context store by `docker context create`), then `docker buildx create --driver
docker-container` on the first and `--append` for the others. The builders and contexts live in
the portal's own docker config folder (PORTAL_DATA_DIR/docker), which `builder:<name>` builds
use too. Every command is an argv list run by python-on-whales' runner and shown to the admin
as it ran, with its output.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from django.conf import settings
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from builds.dockerhost import cert_dir
from builds.models import BuilderNode, BuildxBuilder
from builds.nodes import CommandResult
from portal.grammar import InvalidValue
from portal.private import private_dir

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
DRIVER = "docker-container"


def validate_name(value: object) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise InvalidValue(
            "builder name", value, "lowercase letters, digits, '-' and '_', at most 63"
        )
    return value


def config_dir() -> Path:
    return private_dir(Path(settings.DATA_DIR) / "docker")


def client() -> DockerClient:
    return DockerClient(client_call=[settings.PORTAL_DOCKER_CLI], config=config_dir())


def context_name(node: BuilderNode) -> str:
    return f"crossport-{node.name}"


def _run(args: list[str]) -> CommandResult:
    docker = client()
    shown = shlex.join(["docker", *(str(a) for a in args)])
    try:
        out, err = run([*docker.client_config.docker_cmd, *args], return_stderr=True)
    except DockerException as exc:
        out = "".join(
            part.decode(errors="replace") if isinstance(part, bytes) else str(part or "")
            for part in (exc.stdout, exc.stderr)
        )
        return CommandResult(shown, exc.return_code or 1, out.strip())
    return CommandResult(shown, 0, (str(out or "") + str(err or "")).strip())


def ensure_context(node: BuilderNode) -> CommandResult:
    """A docker context for the node (recreated, so a changed endpoint or TLS takes effect)."""
    name = context_name(node)
    _run(["context", "rm", "--force", "--", name])
    with cert_dir(node.tls()) as certs:
        spec = f"host={node.endpoint}"
        if certs is not None:
            spec += f",ca={certs / 'ca.pem'},cert={certs / 'cert.pem'},key={certs / 'key.pem'}"
        return _run(["context", "create", name, f"--docker={spec}"])


def create(name: str, nodes: list[BuilderNode]) -> list[CommandResult]:
    """`docker buildx create --name N --driver docker-container --node N-0 ctx` (+ --append)."""
    validate_name(name)
    if not nodes:
        raise InvalidValue("nodes", [], "give at least one node")
    results = []
    for index, node in enumerate(nodes):
        results.append(ensure_context(node))
        args = ["buildx", "create", f"--name={name}", f"--driver={DRIVER}"]
        args += ["--driver-opt=network=host", f"--node={name}-{node.name}"]
        if index:
            args.append("--append")
        results.append(_run([*args, "--", context_name(node)]))
        if results[-1].code:
            break
    if all(r.code == 0 for r in results):
        builder, _ = BuildxBuilder.objects.update_or_create(name=name, defaults={})
        builder.nodes.set(nodes)
    return results


def append(builder: BuildxBuilder, node: BuilderNode) -> list[CommandResult]:
    results = [ensure_context(node)]
    args = [
        "buildx",
        "create",
        "--append",
        f"--name={builder.name}",
        f"--node={builder.name}-{node.name}",
    ]
    results.append(_run([*args, "--", context_name(node)]))
    if results[-1].code == 0:
        builder.nodes.add(node)
    return results


def leave(builder: BuildxBuilder, node: BuilderNode) -> list[CommandResult]:
    args = [
        "buildx",
        "create",
        "--leave",
        f"--name={builder.name}",
        f"--node={builder.name}-{node.name}",
    ]
    results = [_run(args)]
    if results[0].code == 0:
        builder.nodes.remove(node)
        results += _drop_unused_contexts([node])
    return results


def _drop_unused_contexts(nodes: list[BuilderNode]) -> list[CommandResult]:
    """A node's context holds a copy of its TLS key: keep it only while a builder uses it."""
    unused = [n for n in nodes if not n.buildx_builders.exists()]
    return [_run(["context", "rm", "--force", "--", context_name(n)]) for n in unused]


def bootstrap(builder: BuildxBuilder) -> list[CommandResult]:
    return [_run(["buildx", "inspect", "--bootstrap", "--", builder.name])]


def inspect(builder: BuildxBuilder) -> list[CommandResult]:
    return [_run(["buildx", "inspect", "--", builder.name])]


def remove(builder: BuildxBuilder) -> list[CommandResult]:
    result = _run(["buildx", "rm", "--", builder.name])
    results = [result]
    if result.code == 0 or "no builder" in result.output.lower():
        nodes = list(builder.nodes.all())
        builder.delete()
        results += _drop_unused_contexts(nodes)
    return results
