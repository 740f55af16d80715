"""The seam between a build and the outside world: git, buildx, the registry, node checks.

The pipeline talks only to a :class:`Backend`, which is the real one; the tests hand it a
subclass (``tests/fakes.py``) instead of patching git, buildx and the registry apart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from builds import buildx, gitsource, guardrails, registry
from builds.gitauth import GitAccess
from builds.models import BuilderNode
from builds.nodes import check_node
from portal.grammar.reference import ImageRef

Tick = Callable[[], bool]  # renews the lease; True when the build should stop


class Backend:
    """The real world: git, buildx and the registry. Tests subclass it (``tests/fakes.py``)."""

    def fetch(
        self, url: str, ref: str, dest: Path, tick: Tick, access: GitAccess | None = None
    ) -> str:
        return gitsource.fetch(url, ref, dest, tick=tick, access=access)

    def build(
        self,
        specs: list[buildx.BuildSpec],
        on_output: Callable[[int, bytes], None],
        should_stop: Callable[[], bool],
        grace: float,
        on_exit: Callable[[int, int], None] | None = None,
    ) -> list[int]:
        return buildx.run(specs, on_output, should_stop, grace, on_exit)

    def read_index(self, ref: ImageRef, digest: str, tick: Tick) -> registry.IndexSummary:
        return registry.read_index(ref, digest, tick=tick)

    def merge(
        self, ref: ImageRef, sources: list[str], tag: str, annotations: dict[str, str], tick: Tick
    ) -> str:
        return registry.merge_index(ref, sources, tag, annotations, tick=tick)

    def tag(self, ref: ImageRef, digest: str, tag: str, tick: Tick) -> None:
        registry.tag_manifest(ref, digest, tag, tick=tick)

    def exists(self, ref: ImageRef, tag: str, tick: Tick) -> bool:
        return registry.tag_exists(ref, tag, tick=tick)

    def base_platforms(self, image: str, tick: Tick) -> set[str]:
        return guardrails.offered_platforms(image, tick)

    def check_architecture(
        self, ref: ImageRef, platform: str, digest: str, work: Path, tick: Tick
    ) -> guardrails.ArchCheck:
        return guardrails.check_architecture(ref, platform, digest, work, tick)

    def attestation_types(self, ref: ImageRef, digest: str, tick: Tick) -> list[str]:
        return registry.predicate_types(ref, digest, tick=tick)

    def check(self, node: BuilderNode) -> BuilderNode:
        return check_node(node)

    def check_push(self, ref: ImageRef) -> None:
        # BuildKit pushes from the node: the portal cannot pin that connection, but it does
        # not start a build towards a registry the outbound guard refuses.
        registry.check_registry(ref.domain)
