"""Manual merge: join images built apart into one multi-platform tag (the article's first method,
`docker manifest create` / `annotate` / `push`), with `docker buildx imagetools create`.

Each source is read from the registry: an index (buildx adds attestations, so per-arch tags
often are one) gives its platform manifests and their attestations; a single manifest gets its
platform from its image config (os, architecture, variant), which the team may override, as
`docker manifest annotate` does. Two sources giving one platform are refused. The new index is
made of explicit descriptors (`imagetools create -f`), so what is pushed is what was previewed;
descriptors resolve in the target repository, so a source from another repository of the same
registry is first copied there (`crossport-merge-<digest>` tags). After the push the index is
read back and every platform must point at the digest planned for it.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builds import ledger, registry
from builds.models import Build, ManifestRecord
from portal.access import check_repository
from portal.grammar import InvalidValue
from portal.grammar.platform import normalize_platform
from portal.grammar.reference import ImageRef, parse_reference
from portal.models import Project, Team

MAX_SOURCES = 16


@dataclass
class Source:
    reference: str  # as the team wrote it
    ref: ImageRef
    digest: str
    media_type: str
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # platform -> descriptor
    attestations: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "media_type": self.media_type,
            "platforms": {p: d["digest"] for p, d in self.manifests.items()},
        }


@dataclass
class MergePlan:
    team: Team
    target: ImageRef
    tag: str
    sources: list[Source]

    @property
    def descriptors(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        for source in self.sources:
            result += list(source.manifests.values()) + source.attestations
        return result

    @property
    def platforms(self) -> dict[str, str]:
        return {p: d["digest"] for s in self.sources for p, d in s.manifests.items()}

    def index(self) -> dict[str, Any]:
        return {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": self.descriptors,
        }

    def commands(self) -> list[str]:
        """The article's commands for the same merge (plain `docker manifest`)."""
        target = f"{self.target.repository}:{self.tag}"
        lines = [
            shlex.join(
                ["docker", "manifest", "create", target]
                + [f"{self.target.repository}@{d}" for d in self.platforms.values()]
            )
        ]
        for platform, digest in self.platforms.items():
            os_name, arch, *variant = platform.split("/")
            argv = ["docker", "manifest", "annotate", f"--os={os_name}", f"--arch={arch}"]
            if variant:
                argv.append(f"--variant={variant[0]}")
            lines.append(shlex.join([*argv, target, f"{self.target.repository}@{digest}"]))
        lines.append(shlex.join(["docker", "manifest", "push", target]))
        return lines


def read_source(reference: str, ref: ImageRef, override: str | None) -> Source:
    pointer = f"@{ref.digest}" if ref.digest else f":{ref.tag or 'latest'}"
    try:
        body = registry.imagetools("inspect", "--raw", "--", f"{ref.repository}{pointer}")
    except registry.RegistryError as exc:
        raise InvalidValue("source", reference, f"cannot read it: {exc}") from exc
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if ref.digest and ref.digest != digest:
        raise InvalidValue("source", reference, f"the registry served {digest}")
    data = json.loads(body)
    media_type = data.get("mediaType", "")
    source = Source(reference, ref, digest, media_type)
    if media_type in registry.INDEX_TYPES or "manifests" in data:
        if override:
            raise InvalidValue("platforms", reference, "an index's platforms come from its entries")
        for entry in data["manifests"]:
            annotations = entry.get("annotations") or {}
            if annotations.get("vnd.docker.reference.type") == registry.ATTESTATION_TYPE:
                source.attestations.append(entry)
                continue
            platform = normalize_platform(registry.platform_of(entry))
            if platform in source.manifests:
                raise InvalidValue("source", reference, f"the index gives {platform} twice")
            source.manifests[platform] = entry
        return source
    if override:
        platform = normalize_platform(override)
    else:
        platform = registry.config_platform(registry.image_config(ref, f"@{digest}"))
    os_name, arch, *variant = platform.split("/")
    spec = {"os": os_name, "architecture": arch} | ({"variant": variant[0]} if variant else {})
    descriptor = {"mediaType": media_type, "digest": digest, "size": len(body), "platform": spec}
    source.manifests[platform] = descriptor
    return source


def plan(team: Team, target: object, sources: object, overrides: object = None) -> MergePlan:
    """Validate and read everything; raises InvalidValue (nothing pushed) on bad input."""
    if not isinstance(target, str):
        raise InvalidValue("target", target, "expected repository:tag")
    ref = parse_reference(target)
    if not ref.tag or ref.digest:
        raise InvalidValue("target", target, "give repository:tag (a tag, no digest)")
    check_repository("target", ref.repository, team)
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise InvalidValue("sources", sources, "expected a list of image references")
    if len(sources) > MAX_SOURCES:
        raise InvalidValue("sources", sources, f"at most {MAX_SOURCES}")
    overrides = overrides or {}
    if not isinstance(overrides, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in overrides.items()
    ):
        raise InvalidValue("platforms", overrides, "expected {source reference: os/arch[/variant]}")
    unknown = set(overrides) - set(sources)
    if unknown:
        raise InvalidValue("platforms", sorted(unknown), "overrides must name given sources")
    refs = []
    for text in sources:
        source_ref = parse_reference(text)
        if source_ref.domain != ref.domain:
            raise InvalidValue(
                "source", text, f"sources must be in the target's registry {ref.domain}"
            )
        # The portal reads (and may copy) sources with its own access: only the team's images.
        check_repository("source", source_ref.repository, team)
        refs.append(source_ref)
    if len({(r.repository, r.digest or r.tag or "latest") for r in refs}) != len(refs):
        raise InvalidValue("sources", sources, "a source is listed twice")
    tag = ref.tag
    assert tag is not None
    if ledger.version_taken(ref.repository, tag, lambda: registry.tag_exists(ref, tag)):
        raise InvalidValue("target", f"{ref.repository}:{tag}", "versions are immutable")
    if Build.objects.filter(project__image=ref.repository, state=Build.State.RUNNING).exists():
        # Its push would race this one for the tag (and the ledger's previous digest). Not
        # named: it may be another team's that builds the repository too.
        raise InvalidValue("target", target, "a build is pushing there; try after it")
    result = MergePlan(team, ref, ref.tag, [])
    owner: dict[str, str] = {}
    for text, source_ref in zip(sources, refs, strict=True):
        source = read_source(text, source_ref, overrides.get(text))
        for platform in source.manifests:
            if platform in owner:
                raise InvalidValue(
                    "sources", sources, f"{owner[platform]} and {text} both give {platform}"
                )
            owner[platform] = text
        result.sources.append(source)
    return result


def push(merge: MergePlan, user: Any) -> ManifestRecord:
    """Copy foreign sources into the target repository, push the index, verify, record."""
    target = merge.target
    for source in merge.sources:
        if source.ref.repository != target.repository:
            copy = f"{target.repository}:crossport-merge-{source.digest.split(':')[1][:12]}"
            registry.imagetools(
                "create", f"--tag={copy}", "--", f"{source.ref.repository}@{source.digest}"
            )
    with tempfile.TemporaryDirectory(prefix="crossport-merge-") as work:
        files = []
        for n, descriptor in enumerate(merge.descriptors):
            path = Path(work) / f"descriptor-{n}.json"
            path.write_text(json.dumps(descriptor))
            files.append(f"--file={path}")
        target_tag = f"{target.repository}:{merge.tag}"
        registry.imagetools("create", f"--tag={target_tag}", *files)
    body = registry.imagetools("inspect", "--raw", "--", target_tag)
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    summary = registry.summarize_index(body, digest)
    # Registries spell some platforms differently (linux/arm64/v8): compare normalised.
    pushed = {normalize_platform(p): d for p, d in summary.platforms.items()}
    if pushed != merge.platforms:
        raise registry.RegistryError(
            f"{target_tag} holds {summary.platforms}, expected {merge.platforms}"
        )
    project = Project.objects.filter(team=merge.team, image=target.repository).first()
    return ledger.record(
        kind=ManifestRecord.Kind.MERGE,
        reference=target_tag,
        summary=summary,
        team=merge.team,
        project=project,
        pushed_by=user,
        sources=[s.to_json() for s in merge.sources],
    )
