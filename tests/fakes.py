"""The one seam of the unit tests: a fake build backend (git, buildx, registry) that replays a
real `--progress=rawjson` stream recorded on the real stack."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builds.backend import Backend
from builds.buildx import BuildSpec
from builds.gitauth import GitAccess
from builds.guardrails import ArchCheck
from builds.models import BuilderNode
from builds.nodes import CommandResult
from builds.registry import IndexSummary
from portal.grammar.reference import ImageRef

DATA = Path(__file__).parent / "builds" / "data"
INDEX_DIGEST = "sha256:" + "ab" * 32
PLATFORM_DIGESTS = {
    "linux/amd64": "sha256:" + "11" * 32,
    "linux/arm64": "sha256:" + "22" * 32,
    "linux/arm/v7": "sha256:" + "33" * 32,
}
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# What the architecture check finds in each platform's image of a good build.
MACHINES = {
    "linux/amd64": "x86-64 64-bit",
    "linux/arm64": "AArch64 64-bit",
    "linux/arm/v7": "ARM 32-bit",
}
PROVENANCE = "https://slsa.dev/provenance/v0.2"
# The fake repository's git tags; every other ref is a branch.
GIT_TAGS = ("v1.0.0", "v1.1.0", "v2.5.0")


def write_hello(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "go.mod").write_text("module example.com/hello\n\ngo 1.19\n")
    (dest / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\t"runtime"\n)\n\n'
        'func main() {\n\tfmt.Printf("Hello from %s/%s\\n", runtime.GOOS, runtime.GOARCH)\n}\n'
    )


def run_digest(index: int) -> str:
    return "sha256:" + f"{index + 1:02x}" * 32


def second_node(**extra: Any) -> BuilderNode:
    """A healthy amd64 node with arm emulators besides the `local_node` fixture."""
    from django.utils import timezone

    fields = {
        "name": "second",
        "endpoint": "tcp://127.0.0.1:9",
        "reachable": True,
        "native_platforms": ["linux/amd64"],
        "emulated_platforms": ["linux/arm64", "linux/arm/v7"],
        "last_checked_at": timezone.now(),
    }
    return BuilderNode.objects.create(**(fields | extra))


IMAGE_SIZE = 4_718_592  # what the fake registry's images weigh, compressed


class FakeBackend(Backend):
    def __init__(
        self,
        stream: bytes | None = None,
        exit_code: int = 0,
        platforms: dict[str, str] | None = None,
        chunk_size: int = 777,
        on_chunk: Callable[[int], None] | None = None,
    ) -> None:
        self.stream = (
            stream if stream is not None else (DATA / "go-hello-3platforms.rawjson").read_bytes()
        )
        self.exit_code = exit_code
        self.platforms = PLATFORM_DIGESTS if platforms is None else platforms
        self.chunk_size = chunk_size
        self.on_chunk = on_chunk
        self.spec: BuildSpec | None = None
        self.dockerfile = ""
        self.context_files: list[str] = []
        self.stopped = False
        self.tagged: list[str] = []
        self.specs: list[BuildSpec] = []
        self.merged: list[tuple[str, list[str]]] = []
        self.run_platforms: dict[str, list[str]] = {}
        self.access: GitAccess | None = None
        # Base images -> the platforms they offer (any other offers PLATFORM_DIGESTS').
        self.base_images: dict[str, set[str]] = {}
        self.base_reads: list[str] = []
        # platform -> the machine found instead of the right one (a wrong image).
        self.wrong_machines: dict[str, str] = {}
        # What each --secret file held while buildx ran: (file mode, folder mode, text).
        self.secret_files: dict[str, tuple[int, int, str]] = {}

    def fetch(
        self,
        url: str,
        ref: str,
        dest: Path,
        tick: Callable[[], bool],
        access: GitAccess | None = None,
    ) -> str:
        self.access = access
        if tick():
            from builds.proc import ProcessStopped

            raise ProcessStopped()
        write_hello(dest)
        # What `git fetch` records, which the worker reads to tell tags from branches.
        kind = "tag" if ref in GIT_TAGS else "branch"
        (dest / ".git").mkdir(exist_ok=True)
        (dest / ".git" / "FETCH_HEAD").write_text(f"{COMMIT}\t\t{kind} '{ref}' of {url}\n")
        return COMMIT

    def build(
        self,
        specs: list[BuildSpec],
        on_output: Callable[[int, bytes], None],
        should_stop: Callable[[], bool],
        grace: float,
        on_exit: Callable[[int, int], None] | None = None,
    ) -> list[int]:
        """Replays the recorded stream as run 0; further runs (a merged plan) just succeed."""
        self.specs = specs
        spec = self.spec = specs[0]
        self.dockerfile = spec.dockerfile.read_text()
        self.context_files = sorted(p.name for p in spec.context.iterdir())
        self.secret_files = {
            name: (
                path.stat().st_mode & 0o777,
                path.parent.stat().st_mode & 0o777,
                path.read_text(),
            )
            for name, path in spec.secrets.items()
        }
        for n, start in enumerate(range(0, len(self.stream), self.chunk_size)):
            if self.on_chunk:
                self.on_chunk(n)
            on_output(0, self.stream[start : start + self.chunk_size])
            if should_stop():
                self.stopped = True
                on_output(0, b"ERROR: failed to solve: context canceled\n")
                return [1] * len(specs)
        codes = [self.exit_code] * len(specs)
        for index, code in enumerate(codes):
            if on_exit is not None:
                on_exit(index, code)
        for index, other in enumerate(specs):
            if codes[index] == 0:
                digest = INDEX_DIGEST if len(specs) == 1 else run_digest(index)
                if len(specs) > 1:
                    self.run_platforms[digest] = list(other.platforms)
                other.metadata_file.write_text(json.dumps({"containerimage.digest": digest}))
        return codes

    def read_index(self, ref: ImageRef, digest: str, tick: Callable[[], bool]) -> IndexSummary:
        platforms = dict(self.platforms)
        if digest in self.run_platforms:  # one run's push of a merged build
            platforms = {p: platforms[p] for p in self.run_platforms[digest]}
        return IndexSummary(
            digest=digest,
            media_type="application/vnd.oci.image.index.v1+json",
            platforms=platforms,
            attestations=[
                {"digest": "sha256:" + "44" * 32, "for": d, "media_type": ""}
                for d in self.platforms.values()
            ],
        )

    def merge(
        self,
        ref: ImageRef,
        sources: list[str],
        tag: str,
        annotations: dict[str, str],
        tick: Callable[[], bool],
    ) -> str:
        self.merged.append((f"{ref.repository}:{tag}", list(sources)))
        return INDEX_DIGEST

    def tag(self, ref: ImageRef, digest: str, tag: str, tick: Callable[[], bool]) -> None:
        self.tagged.append(f"{ref.repository}:{tag}@{digest}")

    def base_platforms(self, image: str, tick: Callable[[], bool]) -> set[str]:
        self.base_reads.append(image)
        return self.base_images.get(image, set(PLATFORM_DIGESTS))

    def check_architecture(
        self, ref: ImageRef, platform: str, digest: str, work: Path, tick: Callable[[], bool]
    ) -> ArchCheck:
        wrong = self.wrong_machines.get(platform)
        return ArchCheck(
            platform, "/usr/local/bin/app", wrong or MACHINES[platform], not wrong, size=IMAGE_SIZE
        )

    def attestation_types(self, ref: ImageRef, digest: str, tick: Callable[[], bool]) -> list[str]:
        return [PROVENANCE]

    existing: set[str] = set()
    dead_endpoints: set[str] = set()

    def check(self, node: BuilderNode) -> BuilderNode:
        """The health check after a failed run: endpoints in dead_endpoints do not answer."""
        if node.endpoint in self.dead_endpoints:
            node.reachable, node.last_error = False, "connection refused"
            node.save()
        return node

    refused_registries: set[str] = set()

    def check_push(self, ref: ImageRef) -> None:
        """The outbound guard's answer for the push registry: registries listed here refuse."""
        from portal.outbound import Refused

        if ref.domain in self.refused_registries:
            raise Refused("image reference", ref.domain)

    def exists(self, ref: ImageRef, tag: str, tick: Callable[[], bool]) -> bool:
        return f"{ref.repository}:{tag}" in self.existing


# A fake that forgot a method would reach the real git, buildx or registry from a unit test.
_NOT_FAKED = [
    name for name in vars(Backend) if not name.startswith("_") and name not in vars(FakeBackend)
]
assert not _NOT_FAKED, f"FakeBackend must override {_NOT_FAKED}"


class Engines:
    """The seam: every command builders.py would run, answered like docker would."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.bridged: set[str] = set()  # contexts whose engine has a bridge network
        self.failing: dict[str, str] = {}  # a command fragment -> its error output

    def __call__(self, args: list[str]) -> CommandResult:
        command = " ".join(["docker", *args])
        self.commands.append(command)
        for fragment, output in self.failing.items():
            if fragment in command:
                return CommandResult(command, 1, output)
        if "network ls" in command:
            bridged = any(f"--context {c} " in command for c in self.bridged)
            return CommandResult(command, 0, "bridge" if bridged else "")
        return CommandResult(command, 0, "")

    def buildx(self) -> list[str]:
        return [c for c in self.commands if " buildx " in c]
