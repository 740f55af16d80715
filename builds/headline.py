"""The headline of a failed build: the real cause, lifted from the failing step's output.

"linux/arm64, step 6/8 (go build): ./main.go:4:2: undefined: nosuchfunc": the platform, the
step (counted over the platform's stages in Dockerfile order) with its command in short, and
the first line of the step's output that looks like a compiler or tool error. The plugin says
what its tools' error lines look like (``Plugin.error_patterns``); a few generic shapes
(``file:line: error:``, ``error:``, ``fatal:``) apply to every build. When no line matches,
BuildKit's own error stands ("process ... did not complete successfully: exit code: 1").

No Django here: `builds.buildruns` feeds it the tracker's `StepFailure`s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from builds.progress import StepFailure

__all__ = ["GENERIC_PATTERNS", "Headline", "error_line", "headline", "stage_order"]

GENERIC_PATTERNS = (
    r"^\S+:\d+(?::\d+)?: (?:fatal )?error\b",  # gcc, clang, javac, many linters
    r"^(?:error|fatal)(?:\[\w+\])?: ",  # rustc, git, make's own
)
MAX_LINE = 300  # characters of the lifted line kept in the headline

_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*\S+(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
_RUN_FLAG = re.compile(r"^--\S+$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$")


@dataclass(frozen=True)
class Headline:
    text: str  # the whole headline
    platform: str | None
    step: str  # "6/8", or "" when the failure was not a Dockerfile step
    command: str  # "go build"
    line: str | None  # the lifted output line, None when BuildKit's error stands
    number: int  # the "#N" of the step's log lines


def stage_order(dockerfile: str) -> list[str]:
    """Stage names in Dockerfile order (BuildKit calls an unnamed stage "stage-<index>")."""
    names: list[str] = []
    for line in dockerfile.splitlines():
        match = _FROM.match(line)
        if match:
            names.append(match.group(1) or f"stage-{len(names)}")
    return names


def error_line(output: Iterable[str], patterns: Iterable[str]) -> str | None:
    """The first output line matching the plugin's patterns, else the generic ones."""
    lines = [line.strip() for line in output]
    for group in (tuple(patterns), GENERIC_PATTERNS):
        compiled = [re.compile(p) for p in group]
        for line in lines:
            if any(p.search(line) for p in compiled):
                return line[:MAX_LINE]
    return None


def short_command(name: str) -> str:
    """ "[linux/arm64 build 6/6] RUN --mount=... CGO_ENABLED=0 go build -o ..." -> "go build"."""
    command = re.sub(r"^\[[^\]]*\]\s*", "", name)
    words = command.split()
    if not words:
        return ""
    if words[0].upper() != "RUN":
        return " ".join(words[:3])[:40]
    words = [w for w in words[1:] if not _RUN_FLAG.match(w)]
    if words and words[0].startswith("<<"):  # a heredoc: BuildKit shows "<<'EOF' (set -eu...)"
        return "RUN script"
    while words and _ASSIGNMENT.match(words[0]):
        words.pop(0)
    kept: list[str] = []
    for word in words[:3]:  # the program and its subcommand: "go build", "go mod download"
        if word.startswith("-"):
            break
        kept.append(word)
    return " ".join(kept)[:40]


def _step_numbers(failure: StepFailure, order: list[str]) -> str:
    step = failure.step
    if step is None or step.index is None:
        return ""

    def position(stage: str) -> int:
        name = stage.rsplit(" ", 1)[-1]
        return order.index(name) if name in order else len(order)

    stages = sorted(failure.stage_totals, key=position)
    earlier = stages[: stages.index(step.stage)] if step.stage in stages else []
    before = sum(failure.stage_totals[s] for s in earlier)
    total = sum(failure.stage_totals.values()) or step.total or 0
    return f"{before + step.index}/{total}"


def headline(failure: StepFailure, patterns: Iterable[str], dockerfile: str = "") -> Headline:
    line = error_line(failure.output, patterns)
    step = _step_numbers(failure, stage_order(dockerfile))
    command = short_command(failure.name)
    where = ", ".join(
        part
        for part in (
            failure.platform or "",
            f"step {step}" + (f" ({command})" if command else "") if step else "",
        )
        if part
    )
    cause = line or failure.error
    return Headline(
        text=f"{where}: {cause}" if where else cause,
        platform=failure.platform,
        step=step,
        command=command,
        line=line,
        number=failure.number,
    )
