"""Which node builds which platform, and how: the build plan.

A build names a strategy; :data:`STRATEGIES` is the one registry of them (key, the sentence the
build form and the API documentation show, and the function that plans), and
``builder:<name>`` names a buildx builder an admin made (:data:`BUILDER`). Adding a strategy is
one entry there. `make_plan` is a pure function of the platforms, the nodes' facts and the
Dockerfile, so every choice it makes is unit-tested without an engine.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from statistics import median
from typing import Any

from portal.grammar import InvalidValue

_BUILDPLATFORM_FROM = re.compile(
    r"^\s*FROM\s+(?:--\S+\s+)*--platform=(?:\$BUILDPLATFORM|\$\{BUILDPLATFORM\})\s",
    re.IGNORECASE | re.MULTILINE,
)


class PlanError(Exception):
    """No plan is possible: no healthy node can build some platform, or (busy) every node
    that could is at its build limit, so the build should wait."""

    def __init__(self, message: str, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


def cross_compiles(dockerfile: str) -> bool:
    """Whether some stage runs on the build platform (and so compiles without emulation)."""
    return bool(_BUILDPLATFORM_FROM.search(dockerfile))


@dataclass(frozen=True)
class NodeInfo:
    pk: int
    name: str
    native: tuple[str, ...]
    emulated: tuple[str, ...]
    running: int = 0  # builds running on it now
    max_builds: int = 2
    reserved_for: frozenset[int] = frozenset()  # team ids; empty: shared by every team
    serves: tuple[str, ...] = ()  # as a member of a named builder: its `--platform` list

    def open_to(self, team: int | None) -> bool:
        return not self.reserved_for or team in self.reserved_for

    @property
    def has_room(self) -> bool:
        return self.running < self.max_builds

    def can_target(self, platform: str) -> bool:
        return platform in self.native or platform in self.emulated


@dataclass
class Step:
    platform: str
    node: str
    node_id: int
    method: str  # native, cross or emulated
    run: int  # steps with the same run number are built by one buildx invocation
    expected_seconds: float | None = None


@dataclass
class Plan:
    strategy: str
    steps: list[Step] = field(default_factory=list)

    @property
    def runs(self) -> list[list[Step]]:
        groups: dict[int, list[Step]] = {}
        for step in self.steps:
            groups.setdefault(step.run, []).append(step)
        return [groups[k] for k in sorted(groups)]

    @property
    def expected_seconds(self) -> float | None:
        """Runs go in parallel: the slowest run's estimate, when every step has history."""
        per_run = []
        for run in self.runs:
            known = [s.expected_seconds for s in run]
            if any(v is None for v in known):
                return None
            per_run.append(max(v for v in known if v is not None))
        return round(max(per_run), 1) if per_run else None

    def node_ids(self) -> set[int]:
        return {s.node_id for s in self.steps}

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "expected_seconds": self.expected_seconds,
            "steps": [asdict(s) for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(strategy=data["strategy"], steps=[Step(**s) for s in data.get("steps", [])])


def _pick(candidates: list[NodeInfo], used: dict[int, int]) -> NodeInfo:
    """The least busy: fewest runs of this plan on it, then fewest running builds, then name."""
    return min(candidates, key=lambda n: (used.get(n.pk, 0), n.running, n.name))


def _why_not(platform: str, nodes: list[NodeInfo]) -> PlanError:
    if not nodes:
        return PlanError("no healthy, enabled builder node")
    if not any(n.can_target(platform) for n in nodes):
        names = ", ".join(n.name for n in nodes)
        return PlanError(
            f"no healthy node can build {platform} (nodes: {names}); install its emulator"
        )
    return PlanError(f"every node that can build {platform} is at its build limit", busy=True)


def _plan_builder(
    plan: Plan, platforms: list[str], nodes: list[NodeInfo], room: list[NodeInfo], dockerfile: str
) -> None:
    # One run through a named buildx builder, whose nodes come in buildx's order. buildx sends
    # a platform to the node made with it (`buildx create --platform`); a node made without
    # any takes the rest. It needs room on every member.
    name = builder_name(plan.strategy)
    if not nodes:
        raise PlanError(f"builder {name} has no nodes")
    if len(room) < len(nodes):
        raise PlanError(f"builder {name}: its nodes are at their build limit", busy=True)
    for platform in platforms:
        node = next((n for n in nodes if platform in n.serves), None)
        node = node or next((n for n in nodes if not n.serves), None)
        if node is None:
            served = "; ".join(f"{n.name}: {', '.join(n.serves)}" for n in nodes)
            raise PlanError(f"builder {name} has no node for {platform} (nodes: {served})")
        plan.steps.append(Step(platform, node.name, node.pk, "builder", 0))


def _method(node: NodeInfo, platform: str, cross: bool) -> str:
    if platform in node.native:
        return "native"
    return "cross" if cross else "emulated"


def _plan_emulate(
    plan: Plan, platforms: list[str], nodes: list[NodeInfo], room: list[NodeInfo], dockerfile: str
) -> None:
    able = [n for n in room if all(n.can_target(p) for p in platforms)]
    if not able:
        for platform in platforms:
            if not any(n.can_target(platform) for n in room):
                raise _why_not(platform, nodes)
        busy = any(all(n.can_target(p) for p in platforms) for n in nodes)
        raise PlanError(
            f"no single node can build all of {', '.join(platforms)}"
            + (" with room for another build" if busy else "; use native or auto"),
            busy=busy,
        )
    node = min(able, key=lambda n: (n.running, -sum(p in n.native for p in platforms), n.name))
    cross = cross_compiles(dockerfile)
    plan.steps = [Step(p, node.name, node.pk, _method(node, p, cross), 0) for p in platforms]


def _spread(*, one_run_per_platform: bool, cross_compile: bool) -> PlanFunction:
    """Per platform a native node, else one that can target it, spread over the nodes."""

    def plan_spread(
        plan: Plan,
        platforms: list[str],
        nodes: list[NodeInfo],
        room: list[NodeInfo],
        dockerfile: str,
    ) -> None:
        used: dict[int, int] = {}
        cross = cross_compile and cross_compiles(dockerfile)
        runs_by_node: dict[int, int] = {}
        for platform in platforms:
            native = [n for n in room if platform in n.native]
            able = native or [n for n in room if n.can_target(platform)]
            if not able:
                raise _why_not(platform, nodes)
            node = _pick(able, used)
            used[node.pk] = used.get(node.pk, 0) + 1
            if one_run_per_platform:
                run = len(plan.steps)
            else:
                run = runs_by_node.setdefault(node.pk, len(runs_by_node))
            step = Step(platform, node.name, node.pk, _method(node, platform, cross), run)
            plan.steps.append(step)

    return plan_spread


PlanFunction = Callable[[Plan, list[str], list[NodeInfo], list[NodeInfo], str], None]


@dataclass(frozen=True)
class Strategy:
    key: str  # stored on builds: never rename one
    summary: str  # what it does, in the build form and the API documentation
    plan: PlanFunction  # (plan, platforms, healthy nodes, those with room, Dockerfile)


# The first is the default.
STRATEGIES: dict[str, Strategy] = {
    s.key: s
    for s in (
        Strategy(
            "auto",
            "native node, else cross-compile, else QEMU; platforms on one node share a run",
            _spread(one_run_per_platform=False, cross_compile=True),
        ),
        Strategy("emulate", "one node builds every platform, QEMU for foreign ones", _plan_emulate),
        Strategy(
            "native",
            "one run per platform on its own node (native where one is), merged",
            _spread(one_run_per_platform=True, cross_compile=False),
        ),
    )
}
DEFAULT_STRATEGY = next(iter(STRATEGIES))
BUILDER_STRATEGY = re.compile(r"builder:([a-z0-9][a-z0-9_-]{0,62})")
BUILDER = Strategy(
    "builder:<name>", "a buildx builder an admin made of several nodes", _plan_builder
)


def strategy_for(key: str) -> Strategy | None:
    return STRATEGIES.get(key) or (BUILDER if BUILDER_STRATEGY.fullmatch(key) else None)


def validate_strategy(value: object) -> str:
    if value is None or value == "":
        return DEFAULT_STRATEGY
    if isinstance(value, str) and strategy_for(value) is not None:
        return value
    raise InvalidValue(
        "strategy", value, f"expected one of {', '.join(STRATEGIES)} or {BUILDER.key}"
    )


def builder_name(strategy: str) -> str | None:
    match = BUILDER_STRATEGY.fullmatch(strategy)
    return match.group(1) if match else None


def _open_nodes(
    strategy: str, platforms: list[str], nodes: list[NodeInfo], team: int | None
) -> list[NodeInfo]:
    """The nodes this team may use (node pools). When only other teams' nodes serve a
    platform, say so now, naming the platforms but never those teams or their nodes."""
    usable = [n for n in nodes if n.open_to(team)]
    if len(usable) == len(nodes):
        return nodes
    if (name := builder_name(strategy)) is not None:
        raise PlanError(f"builder {name} has nodes reserved for other teams")
    closed = [
        p
        for p in platforms
        if not any(n.can_target(p) for n in usable) and any(n.can_target(p) for n in nodes)
    ]
    if closed:
        them = "them" if len(closed) > 1 else "it"
        raise PlanError(
            f"no node open to this team can build {', '.join(closed)}: "
            f"the nodes that serve {them} are reserved for other teams"
        )
    return usable


def make_plan(
    strategy: str,
    platforms: list[str],
    nodes: list[NodeInfo],
    dockerfile: str = "",
    team: int | None = None,
) -> Plan:
    """Assign each platform to a node. `nodes` are the healthy, enabled ones; only those
    shared or reserved for `team` (the build's team id) are used."""
    how = strategy_for(strategy)
    if how is None:
        raise PlanError(f"unknown strategy {strategy!r}")
    nodes = _open_nodes(strategy, platforms, nodes, team)
    plan = Plan(strategy=strategy)
    how.plan(plan, platforms, nodes, [n for n in nodes if n.has_room], dockerfile)
    return plan


def estimate(plan: Plan, history: dict[tuple[str, str], list[float]]) -> None:
    """Expected seconds per step: the median of past runs of that platform by that method."""
    for step in plan.steps:
        past = history.get((step.platform, step.method))
        step.expected_seconds = round(median(past), 1) if past else None


def staging_tag(build_pk: int, platforms: list[str]) -> str:
    """Where one run of a build pushes before the checks (the docker driver cannot push by
    digest); the build's tags come afterwards (builds.publish)."""
    slug = "_".join(p.replace("/", "-") for p in platforms)
    return f"crossport-build-{build_pk}-{slug}"[:128]


def cache_tag(platforms: list[str]) -> str:
    """The project's registry layer cache of one run's platforms (its own tag, so runs of
    other platforms, on other nodes, never overwrite it; BuildKit's `cache-to` replaces the
    whole cache manifest it writes)."""
    slug = "_".join(p.replace("/", "-") for p in sorted(platforms))
    return f"crossport-cache-{slug}"[:128]


def equivalent_cli(
    plan: Plan,
    image: str,
    tags: list[str],
    build_pk: int,
    buildkit_nodes: frozenset[str] = frozenset(),
    registry_cache: bool = False,
) -> list[str]:
    """The commands a person would type to do what this plan does (the article's commands),
    with one docker context per engine node, named as the node (endpoints stay with the
    admins), and for a standalone BuildKit node a `remote` builder named as the node."""
    commands: list[str] = []
    emulated = sorted({s.platform for s in plan.steps if s.method != "native"})
    if emulated:
        names = sorted({p.split("/")[1] for p in emulated})
        commands.append(
            "# once per node, if its emulators are missing:\n"
            f"docker run --privileged --rm tonistiigi/binfmt --install {','.join(names)}"
        )
    runs = plan.runs
    first = f"{image}:{tags[0]}" if tags else image
    pushed = []
    builder = builder_name(plan.strategy)
    for steps in runs:
        platforms = [s.platform for s in steps]
        target = f"{image}:{staging_tag(build_pk, platforms)}"
        pushed.append(target)
        node = steps[0].node
        named = builder or (node if node in buildkit_nodes else "")
        where = [f"--builder={named}"] if named else []
        argv = ["docker", *([] if named else [f"--context={node}"]), "buildx"]
        argv += ["build", *where, f"--platform={','.join(platforms)}"]
        if registry_cache:
            cache = f"type=registry,ref={image}:{cache_tag(platforms)}"
            argv += [f"--cache-from={cache}", f"--cache-to={cache},mode=max"]
        commands.append(shlex.join([*argv, f"--tag={target}", "--push", "."]))
    commands.append("# here the portal checks each platform's binary (README: Guardrails)")
    commands.append(
        shlex.join(["docker", "buildx", "imagetools", "create", f"--tag={first}", *pushed])
    )
    for tag in tags[1:]:
        commands.append(
            shlex.join(["docker", "buildx", "imagetools", "create", f"--tag={image}:{tag}", first])
        )
    return commands
