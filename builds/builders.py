"""Named multi-node buildx builders, managed with the article's commands through python-on-whales.

A builder joins nodes: one docker context per node (`crossport-<node>`, TLS material copied
into the context store by `docker context create`), then `docker buildx create --driver
docker-container --platform <what this node serves>` on the first and `--append` for the others,
each with the BuildKit image and configuration of builds/buildkitconfig.py. The builders and
contexts live in the portal's own docker config folder (PORTAL_DATA_DIR/docker), which
`builder:<name>` builds use too. Every command is an argv list run by python-on-whales' runner
and shown to the admin as it ran, with its output. A node that cannot join undoes the whole
change: nothing half-made is left in buildx's store, on the nodes or in the database.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from builds import buildkitconfig
from builds.dockerhost import cert_dir
from builds.models import BuilderMembership, BuilderNode, BuildxBuilder
from builds.nodes import CommandResult
from portal.grammar import InvalidValue
from portal.grammar.platform import normalize_platforms
from portal.private import private_dir

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
DRIVER = "docker-container"
Member = tuple[BuilderNode, Sequence[str]]  # a node and the platforms it serves (none: all)


@dataclass
class Outcome:
    """The commands run, in order, with their output; `error` says why the change was undone."""

    results: list[CommandResult] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def to_api(self) -> list[dict[str, object]]:
        return [
            {"command": r.command, "exit_code": r.code, "output": r.output} for r in self.results
        ]


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


def node_name(builder: str, node: BuilderNode) -> str:
    """The node's name inside the builder; its BuildKit container is buildx_buildkit_<this>."""
    return f"{builder}-{node.name}"


def validate_platforms(value: object) -> list[str]:
    """The platforms a node serves in a builder (none: whatever its BuildKit offers)."""
    if value in (None, [], ""):
        return []
    if not isinstance(value, (list, str)):
        raise InvalidValue("platforms", value, 'expected a list such as ["linux/arm64"]')
    return normalize_platforms(value)


def docker_cli(args: list[str]) -> CommandResult:
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
    docker_cli(["context", "rm", "--force", "--", name])
    with cert_dir(node.tls()) as certs:
        spec = f"host={node.endpoint}"
        if certs is not None:
            spec += f",ca={certs / 'ca.pem'},cert={certs / 'cert.pem'},key={certs / 'key.pem'}"
        return docker_cli(["context", "create", name, f"--docker={spec}"])


def _last_line(result: CommandResult) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {result.code}"


def _ran(outcome: Outcome, result: CommandResult, node: BuilderNode) -> bool:
    outcome.results.append(result)
    if result.code:
        outcome.error = f"node {node.name} could not join: {_last_line(result)}"
    return not result.code


def _join(outcome: Outcome, name: str, node: BuilderNode, platforms: Sequence[str]) -> bool:
    """Context, a look at the engine (reachable? bridge network?), then `buildx create`."""
    if not _ran(outcome, ensure_context(node), node):
        return False
    # `buildx create` records a node without contacting it: this asks the engine first.
    probe = ["--context", context_name(node), "network", "ls", "--filter=driver=bridge"]
    if not _ran(outcome, docker_cli([*probe, "--format={{.Name}}"]), node):
        return False
    has_bridge = bool(outcome.results[-1].output.strip())
    args = ["buildx", "create", f"--name={name}", f"--driver={DRIVER}"]
    try:
        args += buildkitconfig.create_args(name, has_bridge)
    except ImproperlyConfigured as exc:  # also `manage.py check`'s crossport.E005
        outcome.error = f"the portal's BuildKit settings are wrong: {exc}"
        return False
    args += [f"--platform={','.join(platforms)}"] if platforms else []
    args.append(f"--node={node_name(name, node)}")
    if BuildxBuilder.objects.filter(name=name).exists() or _made(outcome, name):
        args.append("--append")
    return _ran(outcome, docker_cli([*args, "--", context_name(node)]), node)


def _made(outcome: Outcome, name: str) -> bool:
    """Whether this outcome already ran a successful `buildx create --name=<name>`."""
    return any(
        r.code == 0 and r.command.startswith(f"docker buildx create --name={name} ")
        for r in outcome.results
    )


def _members(members: Sequence[Member]) -> list[tuple[BuilderNode, list[str]]]:
    if not members:
        raise InvalidValue("nodes", [], "give at least one node")
    pks = [node.pk for node, _ in members]
    if len(set(pks)) != len(pks):
        raise InvalidValue("nodes", pks, "a node can be in a builder once")
    return [(node, validate_platforms(list(platforms))) for node, platforms in members]


def create(name: str, members: Sequence[Member]) -> Outcome:
    """`docker buildx create --name N --driver docker-container --platform P --node N-x ctx`,
    then the same with `--append` for each further node; all or nothing."""
    validate_name(name)
    checked = _members(members)
    outcome = Outcome()
    if BuildxBuilder.objects.filter(name=name).exists():
        outcome.error = f"a builder named {name} exists"
        return outcome
    for node, platforms in checked:
        if not _join(outcome, name, node, platforms):
            if _made(outcome, name):
                outcome.results.append(docker_cli(["buildx", "rm", "--", name]))
            outcome.results += _drop_unused_contexts([n for n, _ in checked])
            buildkitconfig.config_path(name).unlink(missing_ok=True)
            return outcome
    builder = BuildxBuilder.objects.create(name=name)
    for position, (node, platforms) in enumerate(checked):
        BuilderMembership.objects.create(
            builder=builder, node=node, platforms=platforms, position=position
        )
    return outcome


def append(builder: BuildxBuilder, node: BuilderNode, platforms: Sequence[str] = ()) -> Outcome:
    """`docker buildx create --append --name N --platform P --node N-x ctx`."""
    wanted = validate_platforms(list(platforms))
    outcome = Outcome()
    if builder.nodes.filter(pk=node.pk).exists():
        outcome.error = f"node {node.name} is already in builder {builder.name}"
        return outcome
    if not _join(outcome, builder.name, node, wanted):
        outcome.results += _drop_unused_contexts([node])
        return outcome
    last = max((m.position for m in builder.members()), default=-1)
    BuilderMembership.objects.create(
        builder=builder, node=node, platforms=wanted, position=last + 1
    )
    return outcome


def leave(builder: BuildxBuilder, node: BuilderNode) -> Outcome:
    """`docker buildx create --leave --name N --node N-x`, then the node's BuildKit container
    and state volume go (buildx's --leave keeps them running)."""
    outcome = Outcome()
    if not builder.nodes.filter(pk=node.pk).exists():
        outcome.error = f"node {node.name} is not in builder {builder.name}"
        return outcome
    member = node_name(builder.name, node)
    args = ["buildx", "create", "--leave", f"--name={builder.name}", f"--node={member}"]
    outcome.results.append(docker_cli(args))
    if outcome.results[-1].code:
        outcome.error = f"buildx kept node {node.name}: {_last_line(outcome.results[-1])}"
        return outcome
    builder.nodes.remove(node)
    outcome.results += _remove_containers(node, [member])
    outcome.results += _drop_unused_contexts([node])
    return outcome


def _remove_containers(node: BuilderNode, members: list[str]) -> list[CommandResult]:
    context = ["--context", context_name(node)]
    results = []
    for member in members:
        results.append(docker_cli([*context, "rm", "--force", "--", f"buildx_buildkit_{member}"]))
        volume = f"buildx_buildkit_{member}_state"
        results.append(docker_cli([*context, "volume", "rm", "--force", "--", volume]))
    return results


def _drop_unused_contexts(nodes: list[BuilderNode]) -> list[CommandResult]:
    """A node's context holds a copy of its TLS key: keep it only while a builder uses it."""
    unused = [n for n in nodes if not n.buildx_builders.exists()]
    return [docker_cli(["context", "rm", "--force", "--", context_name(n)]) for n in unused]


def bootstrap(builder: BuildxBuilder) -> Outcome:
    """`docker buildx inspect --bootstrap`: every node's BuildKit container started."""
    outcome = Outcome([docker_cli(["buildx", "inspect", "--bootstrap", "--", builder.name])])
    if outcome.results[0].code:
        outcome.error = f"bootstrap failed: {_last_line(outcome.results[0])}"
    return outcome


def inspect(builder: BuildxBuilder) -> Outcome:
    outcome = Outcome([docker_cli(["buildx", "inspect", "--", builder.name])])
    if outcome.results[0].code:
        outcome.error = _last_line(outcome.results[0])
    return outcome


def remove(builder: BuildxBuilder) -> Outcome:
    """`docker buildx rm`: the builder and its BuildKit containers on every node."""
    outcome = Outcome([docker_cli(["buildx", "rm", "--", builder.name])])
    result = outcome.results[0]
    if result.code and "no builder" not in result.output.lower():
        outcome.error = f"buildx kept builder {builder.name}: {_last_line(result)}"
        return outcome
    nodes = list(builder.nodes.all())
    builder.delete()
    buildkitconfig.config_path(builder.name).unlink(missing_ok=True)
    outcome.results += _drop_unused_contexts(nodes)
    return outcome


# Kubernetes ---------------------------------------------------------------------------------
# The same builder on a cluster: buildx's `kubernetes` driver runs each buildx node as a BuildKit
# Deployment, and `nodeselector=kubernetes.io/arch=<arch>` puts its pods on cluster nodes of that
# architecture, so every platform builds natively. No cluster runs here, so Crossport does not
# run these yet: they are the command lines it would run (tested as such, shown in the README).


DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?")  # room left for "-<arch>"


def kubernetes_commands(
    name: str, platforms: Sequence[str], namespace: str = "crossport"
) -> list[list[str]]:
    """`docker buildx create --driver=kubernetes` per CPU architecture of `platforms` (the
    first creates, the rest `--append`), with the portal's BuildKit image and configuration."""
    # Both become Kubernetes object names (the deployments are named after the buildx nodes).
    for what, value in (("builder name", name), ("namespace", namespace)):
        if not DNS_LABEL.fullmatch(value):
            raise InvalidValue(what, value, "lowercase letters, digits and '-', at most 63")
    by_arch: dict[str, list[str]] = {}
    for platform in validate_platforms(list(platforms)) or ["linux/amd64"]:
        by_arch.setdefault(platform.split("/")[1], []).append(platform)
    commands: list[list[str]] = []
    for arch, served in by_arch.items():
        args = ["buildx", "create", f"--name={name}", "--driver=kubernetes"]
        args += [f"--driver-opt=namespace={namespace}", "--driver-opt=replicas=1"]
        args += [f"--driver-opt=nodeselector=kubernetes.io/arch={arch}"]
        args += [f"--driver-opt=image={buildkitconfig.image()}"]
        args += [f"--buildkitd-config={buildkitconfig.write(name)}"]
        args += [f"--platform={','.join(served)}", f"--node={name}-{arch}"]
        commands.append([*args, "--append"] if commands else args)
    return commands
