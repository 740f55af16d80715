"""Static sites: an optional npm build on the build platform, served by Caddy on every platform.

HTML, CSS and JavaScript are the same bytes on every architecture, so the site is built once
(``npm ci`` + ``npm run build`` on ``$BUILDPLATFORM``) and only copied into the per-platform
web server image; the per-platform stage runs nothing, so QEMU is never involved.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from . import tree as source
from .base import Detection, Option, OptionError, Plugin, Rendered
from .dockerfile import dockerfile_quote, dockerignore, find_control_char, mirror_image
from .secrets import scope_arg, secret_mount, secret_option

# "." or "seg/seg": segments of [A-Za-z0-9._-], none made only of dots (no "..", no escaping
# the context) and none starting with "-". Leading-dot segments stay allowed (".output/public").
_SEGMENT = r"(?!\.+(?:/|$))[A-Za-z0-9_.][A-Za-z0-9._-]*"
OUTPUT_DIR_PATTERN = rf"\.|{_SEGMENT}(?:/{_SEGMENT})*"
# 1024-65535: unprivileged ports only, because the server does not run as root.
PORT_PATTERN = (
    r"(?:102[4-9]|10[3-9][0-9]|1[1-9][0-9]{2}|[2-9][0-9]{3}"
    r"|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)
# http(s)://host[:port][/path]. No "@" (credentials would be kept in the image history: use a
# project .npmrc token instead), no query, fragment, quotes, "$" or spaces.
NPM_REGISTRY_PATTERN = (
    r"https?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%+/-]*)?"
)
NODE_VERSIONS = ("18", "20", "22")

NODE_IMAGE = "node:{version}-slim"
RUNTIME_IMAGE = "caddy:2-alpine"
SITE_ROOT = "/srv"  # not the base image's /usr/share/caddy, whose welcome page would show through
RUNTIME_USER = "65532:65532"

# Folders that commonly hold a ready-made site, in the order detection prefers them.
SITE_FOLDERS = (".", "public", "dist", "site", "build", "_site", "docs", "www")
# Where well-known tools write their output (first match wins: frameworks before bundlers).
OUTPUT_BY_DEPENDENCY = (
    ("react-scripts", "build"),
    ("@docusaurus/core", "build"),
    ("@sveltejs/kit", "build"),
    ("gatsby", "public"),
    ("hexo", "public"),
    ("@11ty/eleventy", "_site"),
    ("next", "out"),
    ("nuxt", ".output/public"),
    ("astro", "dist"),
    ("@vue/cli-service", "dist"),
    ("vite", "dist"),
    ("parcel", "dist"),
    ("webpack", "dist"),
)
# Client-side routers: deep links must fall back to /index.html.
SPA_ROUTERS = (
    "react-router",
    "react-router-dom",
    "@tanstack/react-router",
    "vue-router",
    "@angular/router",
    "svelte-spa-router",
    "wouter",
    "preact-router",
)
# Dependencies of apps that usually need a Node server rather than static hosting.
NODE_SERVERS = ("express", "fastify", "koa", "@nestjs/core", "@remix-run/node")
# .nvmrc LTS aliases.
LTS_NAMES = {"hydrogen": "18", "iron": "20", "jod": "22"}

_DOCKERIGNORE = dockerignore("static", "node_modules", "npm-debug.log*")
# Without a build step the context itself is served: keep secrets and npm settings out of it.
# With one they may be build inputs (Vite reads .env), and only the output is served anyway.
_DOCKERIGNORE_SERVED = """\
.env
.env.*
.npmrc
"""

_MAJOR_RE = re.compile(r"(?<![0-9.])v?([0-9]+)(?![0-9])")


class StaticPlugin(Plugin):
    key = "static"
    label = "Static site"
    error_patterns = (r"^npm (?:ERR!|error) ",)
    options = (
        Option(
            name="build",
            label="Build step",
            help='"npm": npm ci and npm run build before serving; "none": serve the files as '
            "they are. Detected from package.json.",
            default="none",
            choices=("none", "npm"),
        ),
        Option(
            name="output_dir",
            label="Folder to serve",
            help='Relative folder, e.g. "dist" or "public". Empty: "dist" after an npm build, '
            "else the top level.",
            default="",
            pattern=OUTPUT_DIR_PATTERN,
            pattern_message='must be "." or a relative folder like "dist" or "site/public"',
        ),
        Option(
            name="spa",
            label="Single-page app",
            help='"yes": unknown paths serve /index.html (client-side routing); "no": 404.',
            default="no",
            choices=("no", "yes"),
        ),
        Option(
            name="port",
            label="Port",
            help="Port the web server listens on (1024-65535; it does not run as root).",
            default="8080",
            pattern=PORT_PATTERN,
            pattern_message="must be a whole number from 1024 to 65535",
        ),
        Option(
            name="node_version",
            label="Node.js version",
            help="Major version of the node image the npm build runs in.",
            default="18",
            choices=NODE_VERSIONS,
        ),
        Option(
            name="npm_registry",
            label="npm registry",
            help="URL of an internal npm registry, without credentials. Empty: npm's default "
            "(or the project's .npmrc).",
            default="",
            max_length=300,
            pattern=NPM_REGISTRY_PATTERN,
            pattern_message='must be an http(s) URL like "https://npm.example.com/repository/npm/"'
            " without credentials, query or spaces",
        ),
        secret_option(
            "npmrc_secret",
            "npmrc secret",
            "an .npmrc (registry auth tokens) that npm ci reads as /root/.npmrc (npm builds only)",
        ),
    )

    def detect(self, tree: Path) -> Detection | None:
        options: dict[str, str] = {}
        evidence: list[str] = []
        package = self._read_package(tree, evidence)
        scripts = package.get("scripts") if package else None
        build = scripts.get("build") if isinstance(scripts, dict) else None
        if package is not None and isinstance(build, str):
            return self._detect_npm(tree, package, build, options, evidence)
        if package is not None:
            evidence.append("package.json has no build script: the files are served as they are")

        for folder in SITE_FOLDERS:
            path = "index.html" if folder == "." else f"{folder}/index.html"
            if source.read_text(tree, path) is not None:
                where = "the top level" if folder == "." else folder
                evidence.append(f"{path} found: serving {where}")
                self._suggest(options, evidence, "build", "none")
                self._suggest(options, evidence, "output_dir", folder)
                # Lower than any real language: many projects carry an index.html somewhere.
                return Detection(score=0.3, options=options, evidence=evidence)
        return None

    def render(self, options: Mapping[str, str], *, mirror: str = "") -> Rendered:
        # Cleaning again is idempotent and guarantees that the values written unquoted (port,
        # output_dir, node_version) matched their strict patterns even if a caller skipped it.
        opts = self.clean_options(options)
        npm = opts["build"] == "npm"
        output = opts["output_dir"] or ("dist" if npm else ".")
        port = opts["port"]
        runtime = mirror_image(RUNTIME_IMAGE, mirror)
        try_files = "\ttry_files {path} {path}/ /index.html\n" if opts["spa"] == "yes" else ""
        # Quoted heredoc delimiter: BuildKit expands nothing inside. The blank line after it is
        # for hadolint, whose parser otherwise rejects the next instruction.
        caddyfile = f"""\
COPY --link <<'EOF' /etc/caddy/Caddyfile
{{
\tadmin off
\tauto_https off
}}

:{port} {{
\troot * {SITE_ROOT}
\tencode gzip
{try_files}\tfile_server
}}
EOF

"""
        if npm:
            node = mirror_image(NODE_IMAGE.format(version=opts["node_version"]), mirror)
            built = "/src/" if output == "." else f"/src/{output}/"
            secret_arg = secret = ""
            if opts["npmrc_secret"]:  # npm's user config, beside the project's own .npmrc
                secret_arg = scope_arg()
                secret = f" \\\n    {secret_mount(opts['npmrc_secret'], '/root/.npmrc')}"
            head = f"""\
# Generated by Crossport (static plugin). The site is built once on the build platform; the
# per-platform stage only copies files, so nothing runs under emulation.
FROM --platform=$BUILDPLATFORM {node} AS build
WORKDIR /src
ARG NPM_REGISTRY={dockerfile_quote(opts["npm_registry"])}
COPY package.json package-lock.json* npm-shrinkwrap.json* .npmrc* ./
{secret_arg}RUN --mount=type=cache,target=/root/.npm{secret} \\
    if [ -n "$NPM_REGISTRY" ]; then export npm_config_registry="$NPM_REGISTRY"; fi; \\
    npm ci --no-audit --no-fund
COPY . .
RUN npm run build && \\
    if [ ! -d {output} ]; then echo "npm run build did not create {output}: set output_dir" >&2; \\
    exit 1; fi

FROM {runtime}
"""
            site = f"COPY --link --from=build {built} {SITE_ROOT}/\n"
        else:
            head = f"""\
# Generated by Crossport (static plugin). Serves the files as they are; the per-platform stage
# only copies files, so nothing runs under emulation.
FROM {runtime}
"""
            site = f"COPY --link {'.' if output == '.' else output + '/'} {SITE_ROOT}/\n"
        # Caddy writes an autosave and lock files even for plain HTTP; /tmp is writable for any
        # UID (also OpenShift's arbitrary ones), and there are no certificates to keep.
        tail = f"""\
ENV XDG_CONFIG_HOME=/tmp/caddy/config XDG_DATA_HOME=/tmp/caddy/data
USER {RUNTIME_USER}
EXPOSE {port}
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
"""
        dockerignore = _DOCKERIGNORE
        if not npm:
            dockerignore += _DOCKERIGNORE_SERVED
        return Rendered(dockerfile=head + caddyfile + site + tail, dockerignore=dockerignore)

    def _detect_npm(
        self,
        tree: Path,
        package: dict[str, object],
        build: str,
        options: dict[str, str],
        evidence: list[str],
    ) -> Detection:
        evidence.append(f"package.json has a build script: {_shown(build)}")
        self._suggest(options, evidence, "build", "npm")
        names = set(_dependencies(package))
        score = 0.5  # below real languages: a package.json alone says little

        output = next((out for dep, out in OUTPUT_BY_DEPENDENCY if dep in names), None)
        if output is not None:
            dep = next(dep for dep, out in OUTPUT_BY_DEPENDENCY if out == output and dep in names)
            evidence.append(f"depends on {dep}, which writes {output}")
        else:
            output = "dist"
            evidence.append('no known site generator in the dependencies: assuming output "dist"')
        if "@angular/core" in names:
            evidence.append("Angular writes dist/<project>/browser: check output_dir")
        self._suggest(options, evidence, "output_dir", output)

        router = next((name for name in SPA_ROUTERS if name in names), None)
        if router is not None:
            evidence.append(f"depends on {router} (client-side routing): SPA fallback on")
            self._suggest(options, evidence, "spa", "yes")

        server = next((name for name in NODE_SERVERS if name in names), None)
        if server is not None:
            score = 0.3
            evidence.append(
                f"depends on {server}, which usually runs a Node server: check that "
                "npm run build writes a static site"
            )

        self._detect_node_version(tree, package, options, evidence)
        if not any(
            source.read_text(tree, name) is not None
            for name in ("package-lock.json", "npm-shrinkwrap.json")
        ):
            top = source.list_dir(tree)
            others = [name for name in ("yarn.lock", "pnpm-lock.yaml") if name in top]
            also = f" ({', '.join(others)} is not used)" if others else ""
            evidence.append(
                f"no package-lock.json{also}: npm ci needs one, run npm install and commit it"
            )
        return Detection(score=score, options=options, evidence=evidence)

    def _detect_node_version(
        self, tree: Path, package: dict[str, object], options: dict[str, str], evidence: list[str]
    ) -> None:
        """Suggest node_version from .nvmrc, .node-version or engines.node, in that order."""
        engines = package.get("engines")
        candidates = [
            (".nvmrc", source.read_text(tree, ".nvmrc", limit=200)),
            (".node-version", source.read_text(tree, ".node-version", limit=200)),
            ("engines.node", engines.get("node") if isinstance(engines, dict) else None),
        ]
        for where, text in candidates:
            if not isinstance(text, str) or not text.strip():
                continue
            text = text.strip().splitlines()[0].strip()
            lts = LTS_NAMES.get(text.lower().removeprefix("lts/"))
            match = _MAJOR_RE.search(text)
            major = lts or (str(int(match.group(1))) if match else None)
            if major in NODE_VERSIONS:
                evidence.append(f"{where} asks for Node.js {_shown(text)}: using {major}")
                self._suggest(options, evidence, "node_version", major)
            else:
                evidence.append(
                    f"{where} asks for Node.js {_shown(text)}, not one of "
                    f"{', '.join(NODE_VERSIONS)}: using the default"
                )
            return

    def _read_package(self, tree: Path, evidence: list[str]) -> dict[str, object] | None:
        text = source.read_text(tree, "package.json")
        if text is None:
            return None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            evidence.append("package.json is not valid JSON: ignored")
            return None
        if not isinstance(data, dict):
            evidence.append("package.json is not a JSON object: ignored")
            return None
        return data

    def _suggest(self, options: dict[str, str], evidence: list[str], name: str, value: str) -> None:
        # Detected values come from an untrusted tree: only suggest what the form would accept.
        option = next(o for o in self.options if o.name == name)
        try:
            options[name] = option.clean(value)
        except OptionError as exc:
            evidence.append(f"not suggesting {name} {_shown(value)}: {exc.message}")


def _dependencies(package: dict[str, object]) -> list[str]:
    names: list[str] = []
    for field in ("dependencies", "devDependencies"):
        deps = package.get(field)
        if isinstance(deps, dict):
            names.extend(str(name) for name in deps)
    return names


def _shown(text: str, limit: int = 80) -> str:
    """A detected string made safe to show: no control characters, bounded length."""
    cleaned = "".join("?" if find_control_char(ch) else ch for ch in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."
