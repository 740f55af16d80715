"""Two guardrails around a build (README: Guardrails).

Before any buildx run: each base image of the Dockerfile must offer every platform it is
needed for. The FROM lines are read with the parser `builds.lint` uses; ARG defaults declared
before the first FROM and BuildKit's automatic platform args (TARGETPLATFORM, BUILDPLATFORM...)
are expanded as BuildKit does for FROM; `scratch` and earlier stages are no images; a stage
`FROM --platform=$BUILDPLATFORM` needs the platform of the node that builds (its native one).
Indexes are read through `builds.registry` (outbound guard, the team's logins); answers are
kept for one build only.

After the runs pushed (by staging tag) and before any of the build's tags is pushed: each
platform's image must run a binary made for that platform (`builds.imagefiles`, `builds.elf`).
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from builds import blobs, elf, imagefiles, lint, registry
from builds.failures import BuildFailed
from portal import outbound
from portal.grammar import InvalidValue
from portal.grammar.platform import normalize_platform
from portal.grammar.reference import ImageRef, parse_reference

Tick = Callable[[], bool] | None
Say = Callable[[str], None]

_VAR = re.compile(r"\$(?:\{(\w+)(?:(:?[-+])([^}]*))?\}|(\w+))")


def expand(word: str, env: dict[str, str]) -> str:
    """$NAME, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:+alt}, ${NAME+alt}."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        op, arg = match.group(2), match.group(3) or ""
        value = env.get(name)
        if op in (":-", "-"):
            empty = value is None or (op == ":-" and value == "")
            return expand(arg, env) if empty else str(value)
        if op in (":+", "+"):
            present = value is not None and (op == "+" or value != "")
            return expand(arg, env) if present else ""
        return value or ""

    return _VAR.sub(one, word)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def platform_args(prefix: str, platform: str) -> dict[str, str]:
    os_name, arch, *variant = platform.split("/")
    return {
        f"{prefix}PLATFORM": platform,
        f"{prefix}OS": os_name,
        f"{prefix}ARCH": arch,
        f"{prefix}VARIANT": variant[0] if variant else "",
    }


def base_images(
    text: str, pairs: list[tuple[str, str]], build_args: dict[str, str] | None = None
) -> dict[str, set[str]]:
    """Base image (as pulled) -> the platforms it must offer, for (target, build platform)
    pairs: each target platform with the native platform of the node that builds it."""
    commands, problems = lint.parse(text)
    if problems:
        return {}  # buildx will say why it does not parse
    needs: dict[str, set[str]] = {}
    for target, native in pairs:
        env = platform_args("TARGET", target) | platform_args("BUILD", native)
        stages: set[str] = set()
        seen_from = False
        for command in commands:
            if command.cmd.upper() == "ARG" and not seen_from:
                for item in command.value:
                    name, has_default, default = item.partition("=")
                    if build_args and name in build_args:
                        env[name] = build_args[name]
                    elif has_default:
                        env[name] = expand(_unquote(default), env)
            if command.cmd.upper() != "FROM" or not command.value:
                continue
            seen_from = True
            image = expand(command.value[0], env)
            words = [w.lower() for w in command.value]
            earlier = image.lower() in stages
            if len(words) >= 3 and words[1] == "as":
                stages.add(words[2])
            if not image or image.lower() == "scratch" or earlier:
                continue  # an empty name is BuildKit's error to report
            platform = target
            for flag in command.flags:
                if flag.lower().startswith("--platform="):
                    platform = expand(flag.split("=", 1)[1], env) or target
            try:
                needs.setdefault(image, set()).add(normalize_platform(platform))
            except InvalidValue:
                continue  # not a platform BuildKit knows either: buildx will say
    return needs


def offered_platforms(image: str, tick: Tick = None) -> set[str]:
    """The platforms an image offers: its index entries (attestations aside), or the platform
    in the config of a single-platform image."""
    ref = parse_reference(image)
    pointer = f"@{ref.digest}" if ref.digest else f":{ref.tag or 'latest'}"
    body = registry.imagetools("inspect", "--raw", "--", f"{ref.repository}{pointer}", tick=tick)
    data = json.loads(body)
    if "manifests" not in data:
        return {registry.config_platform(registry.image_config(ref, pointer, tick=tick))}
    offered = set()
    for entry in data["manifests"]:
        annotations = entry.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") == registry.ATTESTATION_TYPE:
            continue
        try:
            offered.add(normalize_platform(registry.platform_of(entry)))
        except InvalidValue:
            continue  # unknown/unknown and the like
    return offered


class BaseImageCheck:
    """One build's check of its base images; `read` gives an image's platforms (kept for
    this build only: another build, maybe another team's, asks the registry again)."""

    def __init__(self, say: Say, read: Callable[[str], set[str]]) -> None:
        self.say = say
        self.read = read
        self.answers: dict[str, set[str] | None] = {}

    def offered(self, image: str) -> set[str] | None:
        if image not in self.answers:
            try:
                self.answers[image] = self.read(image)
            except (registry.RegistryError, outbound.Refused, InvalidValue, ValueError) as exc:
                # Not ours to refuse: the build pulls it from the node and says why it cannot.
                self.say(f"base image {image} not checked: {exc}")
                self.answers[image] = None
        return self.answers[image]

    def check(
        self, text: str, pairs: list[tuple[str, str]], build_args: dict[str, str] | None = None
    ) -> None:
        for image, platforms in base_images(text, pairs, build_args).items():
            offered = self.offered(image)
            if offered is None:
                continue
            for platform in sorted(platforms):
                if platform not in offered:
                    raise BuildFailed(
                        f"base image {image} has no {platform} "
                        f"(it offers {', '.join(sorted(offered)) or 'no platform'})"
                    )
            self.say(f"base image {image} offers {', '.join(sorted(platforms))}")

    def sbom_generator(self, pairs: list[tuple[str, str]]) -> str:
        """PORTAL_SBOM_GENERATOR (through the mirror's registry) when it is there for the
        nodes' own platforms (BuildKit runs the scanner natively); "" means no SBOM."""
        if not settings.PORTAL_SBOM_GENERATOR:
            return ""
        image = registry.via_mirror(settings.PORTAL_SBOM_GENERATOR)
        offered = self.offered(image)
        native = {normalize_platform(n) for _, n in pairs}
        if offered is None or not native <= offered:
            self.say(f"no SBOM: the scanner image {image} is not there for {', '.join(native)}")
            return ""
        return image


@dataclass(frozen=True)
class ArchCheck:
    platform: str
    binary: str
    machine: str
    ok: bool | None  # None: nothing to check (no entrypoint, not ELF, unknown architecture)
    note: str = ""
    size: int | None = None  # the image's compressed size, read from the same manifest

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"binary": self.binary, "machine": self.machine, "ok": self.ok}
        return data | ({"note": self.note} if self.note else {})

    @property
    def expected(self) -> str:
        machine, bits = elf.EXPECTED.get(self.platform.split("/")[1], (0, 0))
        return f"{elf.MACHINES.get(machine, 'its architecture')} {bits}-bit"

    def reason(self) -> str:
        return (
            f"{self.platform}: the image runs {self.binary}, built for {self.machine} "
            f"(expected {self.expected}); nothing was tagged"
        )


def check_architecture(
    ref: ImageRef, platform: str, manifest_digest: str, work: Path, tick: Tick = None
) -> ArchCheck:
    """Open the binary the platform's image runs (through its layers in the registry) and
    compare its ELF machine and class with the platform."""
    manifest = json.loads(registry.fetch_manifest(ref, manifest_digest, tick=tick))
    size = image_size(manifest)
    config = blobs.read_json(ref, manifest["config"]["digest"], tick=tick)
    work.mkdir(parents=True, exist_ok=True)
    tree = imagefiles.ImageTree()
    try:
        for n, layer in enumerate(manifest.get("layers") or []):
            tree.add_layer(blobs.download(ref, layer["digest"], work / f"layer-{n}", tick))
        found = imagefiles.find_binary(tree, config)
    except (tarfile.TarError, EOFError, OSError, KeyError) as exc:
        # e.g. zstd layers, which Python's tarfile cannot open: say so, do not guess.
        found = f"not checked: a layer could not be read ({type(exc).__name__})"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if isinstance(found, str):
        return ArchCheck(platform, "", "", None, found, size)
    binary = found.named if found.named == found.real else f"{found.named} -> {found.real}"
    header = elf.read_header(found.head)
    if header is None:
        return ArchCheck(platform, binary, "not an ELF file", None, size=size)
    return ArchCheck(platform, binary, header.describe(), elf.fits(header, platform), size=size)


def image_size(manifest: dict[str, Any]) -> int | None:
    """What pulling the image downloads: its config and layers, compressed, as the manifest
    states them."""
    try:
        parts = [manifest["config"], *(manifest.get("layers") or [])]
        return sum(int(part["size"]) for part in parts)
    except (KeyError, TypeError, ValueError):
        return None
