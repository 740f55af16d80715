"""Which team secrets a build gets, and how they reach BuildKit.

A build gets the secrets its plugin options name and those its Dockerfile mounts
(``RUN --mount=type=secret,id=NAME``), read with BuildKit's own parser. Each must belong to the
project's team and be in scope for the project, or the build fails before buildx runs. The
values are written as 0600 files in a 0700 folder of the build's private workspace (removed with
it) and passed as ``--secret=id=NAME,src=FILE``: never as build arguments or environment, so
they reach no layer, config, history or provenance. The build log hides them (builds.redact).

BuildKit leaves secret contents out of the cache key, so a step that reads a secret could be
answered from another team's cache. Every RUN that mounts one must therefore see
``ARG CROSSPORT_TEAM_SCOPE`` (declared earlier in its stage), and the build passes the team's
opaque id for it (as for its cache mounts): that ARG is in the step's environment, hence in its
cache key. Plugins declare it; a project's own Dockerfile that does
not is refused with a reason saying where to add it (nothing is injected into it).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile

import lang_plugins
from builds.failures import BuildFailed
from builds.redact import Redactor
from lang_plugins.secrets import SCOPE_ARG, is_secret_name
from portal import team_secrets
from portal.models import Project
from portal.private import private_dir


class SecretsUnavailable(BuildFailed):
    """The build names secrets it cannot have (the project's fault)."""


@dataclass(frozen=True)
class BuildSecrets:
    mounts: dict[str, Path] = field(default_factory=dict)  # secret id -> file
    build_args: dict[str, str] = field(default_factory=dict)
    values: tuple[str, ...] = ()

    def redactor(self) -> Redactor:
        return Redactor(self.values)


def secret_mounts(flags: tuple[str, ...]) -> list[str]:
    """The secret ids a RUN's flags mount, read as BuildKit reads them: keys and the type in
    any case; the id, else the source, else the target's file name."""
    ids = []
    for flag in flags:
        if not flag.lower().startswith("--mount="):
            continue
        fields = next(csv.reader([flag[len("--mount=") :]]), [])
        options = {k.strip().lower(): v for k, _, v in (f.partition("=") for f in fields)}
        if options.get("type", "").strip().lower() == "secret":
            target = options.get("target") or options.get("dst") or options.get("destination")
            source = options.get("src") or options.get("source")
            ids.append(options.get("id") or source or Path(target or "").name)
    return ids


def scan(commands: list[dockerfile.Command]) -> tuple[list[str], list[tuple[int, str]]]:
    """Secret ids parsed Dockerfile commands mount, and (line, problem) pairs: ids outside the
    grammar, and mounting RUNs without ARG CROSSPORT_TEAM_SCOPE before them in their stage.
    Builds refuse such files, and the Dockerfile editor shows why (builds.lint)."""
    names: list[str] = []
    problems: list[tuple[int, str]] = []
    scoped = False
    for command in commands:
        cmd = command.cmd.upper()  # instructions are read in any case
        if cmd == "FROM":
            scoped = False
        elif cmd == "ARG":
            scoped |= any(v.partition("=")[0] == SCOPE_ARG for v in command.value)
        elif cmd == "RUN":
            ids = secret_mounts(command.flags)
            for name in ids:
                if not is_secret_name(name):
                    problems.append((command.start_line, f"mounts {name[:64]!r}, no secret name"))
                elif name not in names:
                    names.append(name)
            if ids and not scoped:
                problems.append(
                    (
                        command.start_line,
                        f"reads a secret without ARG {SCOPE_ARG} declared before it in its "
                        "stage (add that line, so the step's cache stays the team's own)",
                    )
                )
    return names, problems


def mounted(text: str) -> tuple[list[str], list[str]]:
    """`scan` for Dockerfile text, problems as sentences."""
    try:
        commands = list(dockerfile.parse_string(text))
    except dockerfile.GoParseError as exc:
        return [], [f"the Dockerfile does not parse: {exc}"]
    names, problems = scan(commands)
    return names, [f"line {line} {problem}" for line, problem in problems]


def prepare_secrets(project: Project, dockerfile_text: str, workspace: Path) -> BuildSecrets:
    """The secrets this build gets (its plugin options name, its Dockerfile mounts), written
    to the workspace's private secrets folder; raises SecretsUnavailable."""
    plugin = lang_plugins.get_plugin(project.language)
    named = plugin.secret_names(plugin.clean_options(project.options))
    in_file, problems = mounted(dockerfile_text)
    wanted = list(dict.fromkeys([*named, *in_file]))
    if not wanted and not problems:
        return BuildSecrets()
    found, missing = team_secrets.for_build(project, wanted)
    problems += missing
    if problems:
        raise SecretsUnavailable("build secrets: " + "; ".join(problems))
    folder = private_dir(workspace / "secrets")
    mounts, values = {}, []
    for secret in found:
        values.append(secret.value)
        mounts[secret.name] = path = folder / secret.name
        path.touch(mode=0o600)
        path.write_text(values[-1])
    team_secrets.mark_used(found)
    scope = project.team.opaque_id
    return BuildSecrets(mounts, {SCOPE_ARG: scope}, tuple(values))
