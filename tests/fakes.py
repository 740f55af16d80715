"""The one seam of the unit tests: a fake build backend (git, buildx, registry) that replays a
real `--progress=rawjson` stream recorded on the real stack."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from builds.buildx import BuildSpec
from builds.refs import ImageRef
from builds.registry import IndexSummary

DATA = Path(__file__).parent / "builds" / "data"
INDEX_DIGEST = "sha256:" + "ab" * 32
PLATFORM_DIGESTS = {
    "linux/amd64": "sha256:" + "11" * 32,
    "linux/arm64": "sha256:" + "22" * 32,
    "linux/arm/v7": "sha256:" + "33" * 32,
}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_hello(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "go.mod").write_text("module example.com/hello\n\ngo 1.19\n")
    (dest / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\t"runtime"\n)\n\n'
        'func main() {\n\tfmt.Printf("Hello from %s/%s\\n", runtime.GOOS, runtime.GOARCH)\n}\n'
    )


class FakeBackend:
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

    def fetch(self, url: str, ref: str, dest: Path, tick: Callable[[], bool]) -> str:
        if tick():
            from builds.proc import ProcessStopped

            raise ProcessStopped()
        write_hello(dest)
        return COMMIT

    def build(
        self,
        spec: BuildSpec,
        on_output: Callable[[bytes], None],
        should_stop: Callable[[], bool],
        grace: float,
    ) -> int:
        self.spec = spec
        self.dockerfile = spec.dockerfile.read_text()
        self.context_files = sorted(p.name for p in spec.context.iterdir())
        for n, start in enumerate(range(0, len(self.stream), self.chunk_size)):
            if self.on_chunk:
                self.on_chunk(n)
            on_output(self.stream[start : start + self.chunk_size])
            if should_stop():
                self.stopped = True
                on_output(b"ERROR: failed to solve: context canceled\n")
                return 1
        if self.exit_code == 0:
            spec.metadata_file.write_text(json.dumps({"containerimage.digest": INDEX_DIGEST}))
        return self.exit_code

    def read_index(self, ref: ImageRef, digest: str, tick: Callable[[], bool]) -> IndexSummary:
        return IndexSummary(
            digest=digest,
            media_type="application/vnd.oci.image.index.v1+json",
            platforms=dict(self.platforms),
            attestations=[
                {"digest": "sha256:" + "44" * 32, "for": d, "media_type": ""}
                for d in self.platforms.values()
            ],
        )

    def tag(self, ref: ImageRef, digest: str, tag: str, tick: Callable[[], bool]) -> None:
        self.tagged.append(f"{ref.repository}:{tag}@{digest}")

    existing: set[str] = set()

    def exists(self, ref: ImageRef, tag: str, tick: Callable[[], bool]) -> bool:
        return f"{ref.repository}:{tag}" in self.existing
