"""Go: cross-compile on the build platform (no emulation), ship the binary on Alpine."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from . import tree as source
from .base import Detection, Option, OptionError, Plugin, Rendered
from .dockerfile import dockerfile_quote, dockerignore, find_control_char, mirror_image
from .secrets import scope_arg, secret_mount, secret_option

# "." or "./seg/seg": segments of [A-Za-z0-9._-], none made only of dots ("..", and "..." which
# go build would read as a wildcard), none starting with "-".
MAIN_PATTERN = r"\.(?:/(?!\.+(?:/|$))[A-Za-z0-9_.][A-Za-z0-9._-]*)*"
GO_VERSION_PATTERN = r"[0-9]+\.[0-9]+"  # not \d, which also matches non-ASCII digits
# GOPRIVATE: comma-separated module path globs (path.Match), e.g. "git.corp.example.com/*".
_GLOB = r"[A-Za-z0-9*?][A-Za-z0-9._~*?/-]*"
GOPRIVATE_PATTERN = rf"{_GLOB}(?:,{_GLOB})*"

GO_IMAGE = "golang:{version}"
RUNTIME_IMAGE = "alpine:3.20"

DOCKERIGNORE = dockerignore("go")

_MODULE_RE = re.compile(r'^[ \t]*module[ \t]+"?([^"\s]+)"?', re.MULTILINE)
_GO_DIRECTIVE_RE = re.compile(r"^[ \t]*go[ \t]+(([0-9]+)\.([0-9]+)(?![0-9])[^\s/]*)", re.MULTILINE)
_PACKAGE_RE = re.compile(r"package[ \t]+([A-Za-z_][A-Za-z0-9_]*)")
_IGNORE_TAG_RE = re.compile(r"^//(?:go:build|\s*\+build)\s.*(?<![!\w])ignore\b")


# The standard library packages the program imports, compiled into /std; a failure only
# leaves them to the program's own build.
_PRECOMPILE = (
    'xargs -r go build -trimpath </imports || echo "crossport: left to the build"; mkdir -p /std'
)
# One compiler cache per target (their entries never overlap), seeded from its /std.
_COMPILER_CACHE = (
    "--mount=type=cache,id=go-build-$TARGETOS-$TARGETARCH$TARGETVARIANT,"
    "target=/root/.cache/go-build,from=std,source=/std"
)


class GoPlugin(Plugin):
    key = "go"
    label = "Go"
    error_patterns = (r"^\S+\.go:\d+(?::\d+)?: ",)  # ./main.go:4:2: undefined: x
    options = (
        Option(
            name="main",
            label="Main package",
            help='Package to build, e.g. "." or "./cmd/server". Empty: detected from the source.',
            default="",
            pattern=MAIN_PATTERN,
            pattern_message='must be "." or a relative path like "./cmd/server"',
        ),
        Option(
            name="ldflags",
            label="Linker flags",
            help="Passed to go build -ldflags.",
            default="-s -w",
            max_length=500,
        ),
        Option(
            name="go_version",
            label="Go version",
            help="Tag of the golang build image (major.minor).",
            default="1.19",
            max_length=10,
            pattern=GO_VERSION_PATTERN,
            pattern_message='must look like "1.19"',
        ),
        Option(
            name="goprivate",
            label="Private modules",
            help="GOPRIVATE (and GONOSUMDB) for the download step: comma-separated module "
            'path patterns, e.g. "git.corp.example.com/*,github.com/acme/*".',
            default="",
            max_length=500,
            pattern=GOPRIVATE_PATTERN,
            pattern_message="must be module path patterns separated by commas, "
            'e.g. "git.corp.example.com/*"',
        ),
        secret_option(
            "netrc_secret",
            "netrc secret",
            "a .netrc (machine HOST login USER password TOKEN) that go mod download reads "
            "as /root/.netrc",
        ),
    )

    def detect(self, tree: Path) -> Detection | None:
        gomod = source.read_text(tree, "go.mod")
        if gomod is None:
            return None
        options: dict[str, str] = {}
        evidence: list[str] = []

        module = _MODULE_RE.search(gomod)
        if module:
            evidence.append(f"go.mod declares module {_shown(module.group(1))}")
        else:
            evidence.append("go.mod found (it has no module line)")

        directive = _GO_DIRECTIVE_RE.search(gomod)
        if directive:
            version = f"{int(directive.group(2))}.{int(directive.group(3))}"
            self._suggest(options, evidence, "go_version", version)
            evidence.append(f"go.mod has go directive {_shown(directive.group(1))}")
        else:
            evidence.append("go.mod has no go directive; using the default Go version")

        main, note = self._find_main(tree)
        evidence.append(note)
        if main:
            self._suggest(options, evidence, "main", main)
        return Detection(score=0.9, options=options, evidence=evidence)

    def render(self, options: Mapping[str, str], *, mirror: str = "") -> Rendered:
        # Cleaning again is idempotent and cheap, and guarantees go_version (which goes into the
        # FROM line unquoted) matched its pattern even if a caller skipped clean_options.
        opts = self.clean_options(options)
        builder = mirror_image(GO_IMAGE.format(version=opts["go_version"]), mirror)
        runtime = mirror_image(RUNTIME_IMAGE, mirror)
        dockerfile = f"""\
# Generated by Crossport (go plugin). Cross-compiles on the build platform: no emulation.
# The standard library packages the program imports (listed once, on the build platform),
# compiled for each target in a step of their own (a layer, so it also travels in the registry
# layer cache, and reused as long as the imports stay the same), seed the target's compiler
# cache: a node that never built the project compiles only the project's own packages. That
# step only saves work: what it cannot compile, the program's build compiles.
FROM --platform=$BUILDPLATFORM {builder} AS source
WORKDIR /src
COPY go.mod go.sum* ./
{self._download(opts)}COPY . .
ARG MAIN={dockerfile_quote(opts["main"] or ".")}

FROM source AS imports
RUN --mount=type=cache,target=/go/pkg/mod CGO_ENABLED=0 \\
    go list -e -deps -f '{{{{if .Standard}}}}{{{{.ImportPath}}}}{{{{end}}}}' "$MAIN" >/imports

FROM --platform=$BUILDPLATFORM {builder} AS std
ARG TARGETOS TARGETARCH TARGETVARIANT
RUN --mount=type=bind,from=imports,source=/imports,target=/imports \\
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOARM=${{TARGETVARIANT#v}} GOCACHE=/std \\
    sh -c '{_PRECOMPILE}'

FROM source AS build
ARG TARGETOS TARGETARCH TARGETVARIANT
ARG LDFLAGS={dockerfile_quote(opts["ldflags"])}
RUN --mount=type=cache,target=/go/pkg/mod \\
    {_COMPILER_CACHE} \\
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOARM=${{TARGETVARIANT#v}} \\
    go build -trimpath -ldflags="$LDFLAGS" -o /out/app "$MAIN"

FROM {runtime}
COPY --from=build /out/app /usr/local/bin/app
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/app"]
"""
        return Rendered(dockerfile=dockerfile, dockerignore=DOCKERIGNORE)

    def _download(self, opts: Mapping[str, str]) -> str:
        """The dependency step: with private modules and the netrc secret when set."""
        private = ""
        if opts["goprivate"]:
            private = (
                f"ARG GOPRIVATE={dockerfile_quote(opts['goprivate'])}\n"
                "ENV GOPRIVATE=$GOPRIVATE GONOSUMDB=$GOPRIVATE\n"
            )
        if not opts["netrc_secret"]:
            return f"{private}RUN --mount=type=cache,target=/go/pkg/mod go mod download\n"
        mount = secret_mount(opts["netrc_secret"], "/root/.netrc")
        return (
            f"{private}{scope_arg()}RUN --mount=type=cache,target=/go/pkg/mod {mount} \\\n"
            "    go mod download\n"
        )

    def _find_main(self, tree: Path) -> tuple[str, str]:
        """The package to build ("" if none) and a sentence saying how it was chosen."""
        if _declares_main(tree, "."):
            return ".", "package main at the top level: main is ."
        commands = [
            name
            for name in source.list_dir(tree, "cmd")
            # go ignores directories starting with "." or "_", as it does testdata
            if name[0] not in "._"
            and name != "testdata"
            and source.is_dir(tree, f"cmd/{name}")
            and _declares_main(tree, f"cmd/{name}")
        ]
        if not commands:
            return "", "no package main at the top level or in cmd/*: set main"
        first = f"./cmd/{commands[0]}"
        if len(commands) == 1:
            return first, f"package main in {_shown(first)}"
        shown = ", ".join(_shown(name) for name in commands[:10])
        more = ", ..." if len(commands) > 10 else ""
        return first, (
            f"several commands in cmd/ ({shown}{more}); using {_shown(first)}, "
            "set main to build another"
        )

    def _suggest(self, options: dict[str, str], evidence: list[str], name: str, value: str) -> None:
        # Detected values come from an untrusted tree: only suggest what the form would accept.
        option = next(o for o in self.options if o.name == name)
        try:
            options[name] = option.clean(value)
        except OptionError as exc:
            evidence.append(f"not suggesting {name} {_shown(value)}: {exc.message}")


def _declares_main(tree: Path, reldir: str) -> bool:
    """Whether the Go package in ``reldir`` is ``main``.

    All buildable files of a package share its name, so the first one that has a package
    clause and is not excluded with an ``ignore`` build constraint decides.
    """
    for name in source.list_dir(tree, reldir):
        if not name.endswith(".go") or name.endswith("_test.go") or name[0] in "._":
            continue
        text = source.read_text(tree, f"{reldir}/{name}")
        if text is None:
            continue
        package, ignored = _package_clause(text)
        if package is None or ignored:
            continue
        return package == "main"
    return False


def _package_clause(text: str) -> tuple[str | None, bool]:
    """The package name of a Go file and whether its header has an ``ignore`` build constraint."""
    pos, ignored = 0, False
    text = text.removeprefix("\ufeff")
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if text.startswith("//", pos):
            end = text.find("\n", pos)
            end = len(text) if end == -1 else end
            if _IGNORE_TAG_RE.match(text[pos:end]):
                ignored = True
            pos = end
        elif text.startswith("/*", pos):
            end = text.find("*/", pos + 2)
            if end == -1:
                return None, ignored
            pos = end + 2
        else:
            break
    match = _PACKAGE_RE.match(text, pos)
    return (match.group(1) if match else None), ignored


def _shown(text: str, limit: int = 80) -> str:
    """A detected string made safe to show: no control characters, bounded length."""
    cleaned = "".join("?" if find_control_char(ch) else ch for ch in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."
