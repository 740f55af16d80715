"""What a BuildKit vertex name says: the platform it works for, its stage and step counter.

"[linux/arm64 build 4/6] RUN go build" -> platform linux/arm64, stage "build", step 4 of 6.
No Django here; `builds.progress` reads names through `parse_vertex_name`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["StepName", "parse_vertex_name", "vertex_platform"]

# Operating systems a cross-compiling target may name ("->windows/amd64"); see below.
_KNOWN_OS = frozenset({"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris"})

# The bracketed prefix BuildKit's Dockerfile frontend gives a step:
#   [<platform>[-><target>] [<stage> ]<index>/<total>] <command>
# where the index is right-aligned to the width of the total ("[build  4/12]"), and
# "[<platform> internal] ..." for metadata loads. The platform is there only in
# multi-platform builds.
_PREFIX = re.compile(r"\[(?P<inner>[^\]]*)\]")
_PLATFORM = re.compile(
    r"(?P<platform>[a-z][a-z0-9]*(?:\([^)\s]*\))?/[a-z0-9_]+(?:/[a-z0-9.]+)?)"
    r"(?:->(?P<target>[a-z0-9_./()]+))?"
)
_COUNTER = re.compile(r"(?:(?P<stage>\S+) +)?(?P<index>\d+)/(?P<total>\d+)")


@dataclass(frozen=True)
class StepName:
    platform: str | None
    stage: str
    index: int | None
    total: int | None


def parse_vertex_name(name: str) -> StepName:
    match = _PREFIX.match(name)
    if match is None:
        return StepName(None, "", None, None)
    inner = match.group("inner").strip()
    platform = None
    head, _, rest = inner.partition(" ")
    plat = _PLATFORM.fullmatch(head)
    if plat is not None:
        platform = _target_platform(plat.group("platform"), plat.group("target"))
        stage_text = rest.strip()
        marker = head
    else:
        stage_text = inner
        marker = ""
    counter = _COUNTER.fullmatch(stage_text)
    if counter is None:
        return StepName(platform, stage_text, None, None)
    stage = f"{marker} {counter.group('stage') or ''}".strip()
    return StepName(platform, stage, int(counter.group("index")), int(counter.group("total")))


def _target_platform(base: str, target: str | None) -> str:
    # "[linux/amd64->arm64 build 3/5]" is a step running on linux/amd64 for the linux/arm64
    # image (a cross-compiling stage). The target is "arch[/variant]" when only the
    # architecture differs, a full "os/arch[/variant]" otherwise.
    base = re.sub(r"\([^)]*\)", "", base)
    if not target:
        return base
    target = re.sub(r"\([^)]*\)", "", target)
    if target.split("/", 1)[0] in _KNOWN_OS:
        return target
    return f"{base.split('/', 1)[0]}/{target}"


def vertex_platform(name: str) -> str | None:
    """The platform a vertex works for, from its name, or None for a shared vertex.

    "[linux/arm64 build 4/6] RUN ..." -> "linux/arm64"; "[linux/arm/v7 internal] load
    metadata for ..." -> "linux/arm/v7"; "[build 2/5] WORKDIR /src" -> None. For a
    cross-compiling step "[linux/amd64->arm64 build 3/5]" this is the target, "linux/arm64":
    the image the step's output goes into.
    """
    return parse_vertex_name(name).platform
