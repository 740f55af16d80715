"""After the buildx runs: read back what they pushed, check each platform's binary, and only
then point the build's tags at it.

Every run pushes to a staging tag of its own (``planner.staging_tag``), never to one of the
build's tags: the docker driver cannot push by digest, and a tag pushed before the check would
ship an image the check then refuses. Each platform's image is checked from the registry
(``builds.guardrails.check_architecture``); a mismatch fails the build with nothing tagged.
Then a single run's index is copied to the first tag (the same bytes, so the same digest) and
several runs' indexes are merged into it (``docker buildx imagetools create``), keeping every
run's platform manifests and attestation manifests; the build's other tags are copies too.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import TypeVar

from builds import buildx, events, registry
from builds.backend import Backend, Tick
from builds.buildlog import BuildLog
from builds.failures import BuildFailed
from builds.guardrails import ArchCheck
from builds.lease import Lease
from builds.models import Build, BuildPlatform
from portal.grammar.reference import ImageRef, parse_reference

T = TypeVar("T")
PREDICATES = {
    "https://slsa.dev/provenance/v0.2": "provenance",
    "https://slsa.dev/provenance/v1": "provenance",
    "https://spdx.dev/Document": "sbom",
}


class Publisher:
    def __init__(
        self,
        build: Build,
        backend: Backend,
        lease: Lease,
        log: BuildLog,
        platforms: dict[str, BuildPlatform],
        annotations: dict[str, str],
    ) -> None:
        self.build = build
        self.backend = backend
        self.tick = lease.renew
        self.log = log
        self.platforms = platforms
        self.annotations = annotations
        self.ref: ImageRef = parse_reference(build.project.image)
        # Indexes read by digest: content-addressed, so each is read from the registry once.
        self.indexes: dict[str, registry.IndexSummary] = {}

    def read_index(self, digest: str) -> registry.IndexSummary:
        if digest not in self.indexes:
            self.indexes[digest] = self.backend.read_index(self.ref, digest, self.tick)
        return self.indexes[digest]

    def pushed_digest(self, spec: buildx.BuildSpec) -> str:
        digest = str(spec.read_metadata().get("containerimage.digest", ""))
        if not digest.startswith("sha256:"):
            raise BuildFailed("buildx reported no pushed digest", Build.Fault.SYSTEM)
        return digest

    def staged(self, specs: list[buildx.BuildSpec]) -> tuple[list[str], dict[str, str], set[str]]:
        """What the runs pushed: their digests, platform -> manifest digest, attestations."""
        sources: list[str] = []
        platforms: dict[str, str] = {}
        attestations: set[str] = set()
        for spec in specs:
            digest = self.pushed_digest(spec)
            sources.append(digest)
            try:
                summary = self.read_index(digest)
            except registry.RegistryError:
                # An engine without attestations pushes one platform as a plain manifest.
                if len(spec.platforms) != 1:
                    raise
                platforms[spec.platforms[0]] = digest
                continue
            platforms |= summary.platforms
            attestations |= {a["digest"] for a in summary.attestations}
        return sources, platforms, attestations

    def check_architectures(self, platforms: dict[str, str], work: Path) -> None:
        """Each platform's binary against its platform; fails the build on a mismatch."""
        failed: list[ArchCheck] = []
        todo = [p for p in self.build.platforms if p in platforms]  # the rest: see publish()
        checks = self.at_once(
            [
                functools.partial(self.check_one, p, platforms[p], work / f"arch-{n}")
                for n, p in enumerate(todo)
            ]
        )
        for platform, check in zip(todo, checks, strict=True):
            row = self.platforms[platform]
            row.arch_check, row.size_bytes = check.to_json(), check.size
            row.save(update_fields=["arch_check", "size_bytes"])
            verdict = {True: "fits", False: "DOES NOT FIT", None: "not checked"}[check.ok]
            what = f"{check.binary} is {check.machine}" if check.binary else check.note
            self.log.say(f"architecture check {platform}: {what}: {verdict}")
            if check.ok is False:
                failed.append(check)
        if failed:
            first = failed[0]
            for platform, row in self.platforms.items():
                bad = next((c for c in failed if c.platform == platform), None)
                row.state = BuildPlatform.State.FAILED if bad else BuildPlatform.State.CANCELLED
                row.reason = (
                    f"expected {bad.expected}: not tagged"
                    if bad
                    else f"not tagged: {first.platform} failed the architecture check"
                )
                row.save(update_fields=["state", "reason"])
            raise BuildFailed(f"architecture check failed: {first.reason()}")
        events.publish_status(self.build)

    def check_one(self, platform: str, digest: str, work: Path, stopped: Tick) -> ArchCheck:
        try:
            return self.backend.check_architecture(self.ref, platform, digest, work, stopped)
        except registry.RegistryError as exc:
            return ArchCheck(platform, "", "", None, f"not checked: {exc}")

    def publish(
        self, sources: list[str], platforms: dict[str, str], attestations: set[str]
    ) -> registry.IndexSummary:
        """The build's tags, pointed at the checked pushes; the index they name, verified."""
        image, tag = self.build.project.image, self.build.tags[0]
        if len(sources) == 1:
            digest = sources[0]
            self.backend.tag(self.ref, digest, tag, self.tick)
            self.log.say(f"tagged {image}:{tag}")
        else:
            digest = self.merge(sources, platforms, attestations)
        summary = self.read_index(digest)
        registry.check_platforms(summary, list(self.build.platforms))
        for other in self.build.tags[1:]:
            self.backend.tag(self.ref, digest, other, self.tick)
            self.log.say(f"tagged {image}:{other}")
        self.describe(summary)
        return summary

    def merge(self, sources: list[str], platforms: dict[str, str], attestations: set[str]) -> str:
        """Join the runs' pushes into the tag; each platform keeps the digest its run made,
        and every run's attestation manifests come along."""
        tag = self.build.tags[0]
        self.log.say(
            f"merging {len(sources)} pushes into {self.ref.repository}:{tag} "
            "(docker buildx imagetools create)"
        )
        digest = self.backend.merge(self.ref, sources, tag, self.annotations, self.tick)
        merged = self.read_index(digest)
        for platform in self.build.platforms:
            if merged.platforms.get(platform) != platforms.get(platform):
                raise registry.RegistryError(
                    f"the merged index has {merged.platforms.get(platform)} for {platform}, "
                    f"its run pushed {platforms.get(platform)}"
                )
        lost = attestations - {a["digest"] for a in merged.attestations}
        if lost:
            raise registry.RegistryError(
                f"the merged index lost {len(lost)} attestation manifest(s) of the runs"
            )
        return digest

    def describe(self, summary: registry.IndexSummary) -> None:
        """Each attestation manifest gets its platform and what it attests (for the ledger,
        the build page and the API); the manifests are read at once."""
        by_digest = {d: p for p, d in summary.platforms.items()}

        def kinds(digest: str, stopped: Tick) -> str:
            try:
                types = self.backend.attestation_types(self.ref, digest, stopped)
            except registry.RegistryError:
                types = []
            return ", ".join(sorted({PREDICATES.get(t, t) for t in types}))

        found = self.at_once([functools.partial(kinds, a["digest"]) for a in summary.attestations])
        for attestation, what in zip(summary.attestations, found, strict=True):
            attestation["platform"] = by_digest.get(attestation.get("for", ""), "")
            attestation["kinds"] = what

    def at_once(self, work: list[Callable[[Tick], T]]) -> list[T]:
        """Each `work(stopped)` in a thread of its own (registry reads: waiting, not computing);
        their results in order. The lease is renewed here meanwhile, not from the threads,
        which only learn from `stopped()` whether to stop."""
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=max(1, len(work))) as pool:
            futures = [pool.submit(contextvars.copy_context().run, w, stop.is_set) for w in work]
            while wait(futures, timeout=5).not_done:
                if self.tick():
                    stop.set()
        return [future.result() for future in futures]
