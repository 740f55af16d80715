"""Python: install wheels for the target platform on the build platform, ship them on python-slim.

pip resolves the requirements once, on ``$BUILDPLATFORM``, and installs the pure-Python packages
there once for every platform. Only packages with compiled code are installed per target
platform, still on ``$BUILDPLATFORM``, with that target's manylinux tags (``pip --platform``),
so no installer runs under emulation. A requirement without a wheel for the target is built on
the build platform; a pure-Python result is used like any wheel. Only compiled packages with no
wheel for the target fall back to a per-platform stage that installs them under QEMU, and the
build output names them (the "build plan").
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from . import tree as source
from .base import Detection, Option, OptionError, Plugin, Rendered
from .dockerfile import dockerfile_quote, dockerignore, find_control_char, mirror_image
from .image import APP_USER, image_options, image_settings
from .secrets import scope_arg, secret_mount, secret_option

PYTHON_VERSIONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
INSTALL_MODES = ("requirements", "pyproject")

# Words of printable ASCII that mean nothing to a shell or to JSON: the command becomes an
# exec-form ENTRYPOINT (a JSON list, no shell), and this keeps it readable and unambiguous.
_WORD = r"[A-Za-z0-9_./:=@%+,-]+"
COMMAND_PATTERN = rf"(?!-){_WORD}(?: +{_WORD})*"
# http(s), a host name, IPv4 or [IPv6] address, an optional port and a plain path. No
# user:password@ (credentials do not belong in a Dockerfile), no query or fragment.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
INDEX_URL_PATTERN = (
    rf"https?://(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?"
    r"(?:/[A-Za-z0-9._~%+,;=:-]*)*"
)


BUILD_IMAGE = "python:{version}-slim"  # the build stage runs the runtime's own Python version
# The emulation fallback runs on the runtime's slim image unless the project needs a compiler
# there: the full image has gcc and headers, but every build then pulls it for every platform.
FALLBACK_IMAGES = {"slim": "python:{version}-slim", "full": "python:{version}"}
RUNTIME_IMAGE = "python:{version}-slim"

DOCKERIGNORE = dockerignore(
    "python",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "**/__pycache__",
    "**/*.py[cod]",
    "**/*.egg-info",
)

# The build plan's programs are files beside the plugin (read once, linted like the rest): in
# requirements mode the sources stage runs python_sources.py, which keeps only the requirements
# files; the resolve stage runs python_resolve.py on the build platform, once for all
# platforms; the deps stage runs python_plan.py there, once per target platform; the fallback
# stage runs python_fallback.sh on the target platform. All are constants: options reach them
# only as arguments from a fixed set.
_SCRIPTS = resources.files("lang_plugins") / "scripts"
SOURCES_SCRIPT = (_SCRIPTS / "python_sources.py").read_text(encoding="utf-8")
RESOLVE_SCRIPT = (_SCRIPTS / "python_resolve.py").read_text(encoding="utf-8")
PLAN_SCRIPT = (_SCRIPTS / "python_plan.py").read_text(encoding="utf-8")
FALLBACK_SCRIPT = (_SCRIPTS / "python_fallback.sh").read_text(encoding="utf-8")

PIP_ENV = "PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_PROGRESS_BAR=off"
_CACHE = "--mount=type=cache,target=/root/.cache/pip"


class PythonPlugin(Plugin):
    key = "python"
    label = "Python"
    error_patterns = (
        r"^ERROR: ",  # pip
        r"^\w+(?:\.\w+)*(?:Error|Exception): ",  # a traceback's last line
    )
    options = (
        Option(
            name="install",
            label="Install from",
            help="requirements: pip install -r requirements.txt. pyproject: build the project's "
            "wheel (pyproject.toml or setup.py) and install it with its dependencies "
            "(and requirements.txt, if there is one).",
            default="requirements",
            choices=INSTALL_MODES,
        ),
        Option(
            name="python_version",
            label="Python version",
            help="Tag of the python build and runtime images (major.minor).",
            default="3.11",
            choices=PYTHON_VERSIONS,
        ),
        Option(
            name="fallback",
            label="Emulation fallback image",
            help="Where packages with compiled code and no wheel for a platform are installed, "
            "under emulation: slim (the runtime image, no compiler, nothing extra to pull) or "
            "full (python:<version> with gcc, pulled for every platform).",
            default="slim",
            choices=tuple(FALLBACK_IMAGES),
        ),
        Option(
            name="command",
            label="Command",
            help='What the container runs, e.g. "app.py", "python -m app" or '
            '"gunicorn app:app". A first word ending in .py runs with python.',
            default="app.py",
            max_length=300,
            pattern=COMMAND_PATTERN,
            pattern_message="must be words of letters, digits and . _ / : = @ % + , - "
            "separated by spaces, not starting with -",
        ),
        Option(
            name="index_url",
            label="Package index URL",
            help="A PEP 503 simple index, e.g. https://pypi.example.com/simple/. "
            "Empty: pip's default (PyPI).",
            default="",
            max_length=500,
            pattern=INDEX_URL_PATTERN,
            pattern_message="must be an http(s) URL such as https://pypi.example.com/simple/ "
            "(no user:password@, query or fragment)",
        ),
        *image_options(reserved=("PATH", "PYTHONPATH", "PYTHONUNBUFFERED")),
        secret_option(
            "pip_secret",
            "pip config secret",
            "a pip.conf (e.g. [global] index-url with user:password) that the dependency "
            "step reads as /etc/pip.conf",
        ),
    )

    def render(self, options: Mapping[str, str], *, mirror: str = "") -> Rendered:
        # Cleaning again guarantees python_version and install (used unquoted) are choices.
        opts = self.clean_options(options)
        version = opts["python_version"]
        build = mirror_image(BUILD_IMAGE.format(version=version), mirror)
        fallback_image = FALLBACK_IMAGES[opts["fallback"]].format(version=version)
        fallback = mirror_image(fallback_image, mirror)
        runtime = mirror_image(RUNTIME_IMAGE.format(version=version), mirror)
        index_args = ""
        if opts["index_url"]:
            index_args = f"ARG PIP_INDEX_URL={dockerfile_quote(opts['index_url'])}\n"
            if opts["index_url"].startswith("http://"):
                # pip ignores a plain-http index unless told to trust its host; internal
                # mirrors often have no TLS, and whoever typed http:// chose that.
                host = urlsplit(opts["index_url"]).netloc
                index_args += f"ARG PIP_TRUSTED_HOST={dockerfile_quote(host)}\n"
        entrypoint = json.dumps(exec_form(opts["command"]))
        # What the dependency stages mount as /src: in requirements mode only the requirements
        # files (the sources stage), so a change to the code alone keeps their cache; a
        # project's own wheel (pyproject mode) is built from the whole tree.
        sources = ""
        src = "--mount=type=bind,target=/src,rw"
        if opts["install"] == "requirements":
            sources = f"""
FROM --platform=$BUILDPLATFORM {build} AS sources
RUN --mount=type=bind,target=/src \\
    python - /src /sources <<'END_OF_SOURCES'
{SOURCES_SCRIPT}END_OF_SOURCES
"""
            src = "--mount=type=bind,from=sources,source=/sources,target=/src,rw"
        secret_arg = secret = ""
        if opts["pip_secret"]:  # pip reads /etc/pip.conf as its site-wide configuration
            secret_arg = scope_arg()
            secret = f" \\\n    {secret_mount(opts['pip_secret'], '/etc/pip.conf')}"
        data_stage, runtime_extra = image_settings(opts, build)
        dockerfile = f"""\
# Generated by Crossport (python plugin). Build plan:
# - sources (requirements mode) keeps the requirements files, and the files they include, for
#   the stages below: a change to the code alone does not install the dependencies again.
# - resolve runs once on the build platform (no emulation, no target argument, so one run
#   serves every platform): pip resolves the requirements and installs the pure-Python
#   packages into /pure; the packages with compiled code are listed for each platform.
# - deps runs on the build platform once per target platform: pip installs the listed
#   packages' wheels for the target's manylinux tags into /install. A package with no such
#   wheel is built here; if the result is pure Python it is used like any wheel.
# - fallback runs on the target platform, under QEMU for foreign ones, and installs only the
#   packages with compiled code and no wheel for that platform; the build output names them.
# - The runtime image gets /pure and /install (on PYTHONPATH) and the source in /app; no
#   installer runs.
{index_args}{sources}
FROM --platform=$BUILDPLATFORM {build} AS resolve
ARG PIP_INDEX_URL PIP_TRUSTED_HOST
ENV {PIP_ENV}
WORKDIR /src
{secret_arg}RUN {src} {_CACHE}{secret} \\
    python - {opts["install"]} <<'END_OF_RESOLVE'
{RESOLVE_SCRIPT}END_OF_RESOLVE

FROM --platform=$BUILDPLATFORM {build} AS deps
ARG TARGETPLATFORM TARGETARCH TARGETVARIANT PIP_INDEX_URL PIP_TRUSTED_HOST
ENV {PIP_ENV}
WORKDIR /src
{secret_arg}RUN {src} \\
    --mount=type=bind,from=resolve,source=/resolved,target=/resolved {_CACHE}{secret} \\
    python - <<'END_OF_PLAN'
{PLAN_SCRIPT}END_OF_PLAN

FROM {fallback} AS fallback
ARG TARGETPLATFORM BUILDPLATFORM PIP_INDEX_URL PIP_TRUSTED_HOST
ENV {PIP_ENV}
WORKDIR /src
{secret_arg}RUN {src} \\
    --mount=type=bind,from=deps,source=/plan,target=/plan \\
    {_CACHE}{secret} <<'END_OF_FALLBACK'
{FALLBACK_SCRIPT}END_OF_FALLBACK
{data_stage}
FROM {runtime}
{runtime_extra}ENV PYTHONPATH=/install PATH=/install/bin:$PATH PYTHONUNBUFFERED=1
COPY --link --from=resolve /pure /install
COPY --link --from=deps /install /install
COPY --link --from=fallback /install /install
WORKDIR /app
COPY --link . .
USER {APP_USER}
ENTRYPOINT {entrypoint}
"""
        return Rendered(dockerfile=dockerfile, dockerignore=DOCKERIGNORE)

    def detect(self, tree: Path) -> Detection | None:
        requirements = source.read_text(tree, "requirements.txt")
        pyproject_text = source.read_text(tree, "pyproject.toml")
        setup_py = source.read_text(tree, "setup.py") is not None
        options: dict[str, str] = {}
        evidence: list[str] = []
        pyproject: dict[str, object] = {}
        if pyproject_text is not None:
            try:
                pyproject = tomllib.loads(pyproject_text)
            except tomllib.TOMLDecodeError as exc:
                evidence.append(f"pyproject.toml is not valid TOML ({_shown(str(exc))})")
        project = pyproject.get("project")
        project = project if isinstance(project, dict) else {}
        is_package = bool(project) or "build-system" in pyproject or setup_py

        if requirements is not None:
            count = sum(1 for line in requirements.splitlines() if _is_requirement(line))
            evidence.append(f"requirements.txt lists {count} requirement(s)")
        if is_package:
            self._suggest(options, evidence, "install", "pyproject")
            name = project.get("name")
            if isinstance(name, str):
                evidence.append(f"pyproject.toml declares project {_shown(name)}")
            elif setup_py:
                evidence.append("setup.py found: the project is built as a wheel")
            else:
                evidence.append("pyproject.toml has a [build-system]")
            if requirements is not None:
                evidence.append("requirements.txt is installed together with the project")
        elif requirements is not None:
            self._suggest(options, evidence, "install", "requirements")
            if pyproject_text is not None:
                evidence.append("pyproject.toml only holds tool settings (no [project])")
        elif any(name.endswith(".py") for name in source.list_dir(tree)):
            evidence.append("Python files at the top level, but no requirements.txt or pyproject")
        else:
            return None

        self._detect_version(tree, project, options, evidence)
        command, note = self._detect_command(tree, project)
        evidence.append(note)
        if command:
            self._suggest(options, evidence, "command", command)
        score = 0.9 if project else 0.8 if is_package or requirements is not None else 0.4
        return Detection(score=score, options=options, evidence=evidence)

    def _detect_version(
        self, tree: Path, project: dict[str, object], options: dict[str, str], evidence: list[str]
    ) -> None:
        pinned = source.read_text(tree, ".python-version", limit=200)
        if pinned is not None and (m := re.match(r"\s*(?:python-)?(3\.[0-9]+)", pinned)):
            self._suggest(options, evidence, "python_version", m.group(1))
            evidence.append(f".python-version asks for {_shown(pinned.strip())}")
            return
        requires = project.get("requires-python")
        m = re.search(r"(>=|~=|==)\s*3\.([0-9]+)", requires) if isinstance(requires, str) else None
        if m is None:
            return
        low, default = int(m.group(2)), int(self._option("python_version").default[2:])
        if m.group(1) != "==" and low <= default:
            evidence.append(f"requires-python {_shown(str(requires))}: the default version fits")
            return
        # Pinned (==3.X), or a lower bound above the default: the lowest version that fits.
        fits = [v for v in PYTHON_VERSIONS if int(v[2:]) >= low]
        if fits and (m.group(1) != "==" or int(fits[0][2:]) == low):
            options["python_version"] = fits[0]
            evidence.append(f"requires-python {_shown(str(requires))}: using Python {fits[0]}")
        else:
            evidence.append(f"requires-python {_shown(str(requires))}: no offered version fits")

    def _detect_command(self, tree: Path, project: dict[str, object]) -> tuple[str, str]:
        """The command to suggest ("" if none) and a sentence saying how it was chosen."""
        scripts = project.get("scripts")
        if isinstance(scripts, dict) and scripts:
            name = str(sorted(scripts)[0])
            return name, f"console script {_shown(name)} from [project.scripts]"
        for top in ("", "src/"):
            for name in source.list_dir(tree, top or "."):
                if (
                    name.isidentifier()
                    and source.is_dir(tree, f"{top}{name}")
                    and source.read_text(tree, f"{top}{name}/__main__.py") is not None
                ):
                    return f"python -m {name}", f"package {_shown(name)} has a __main__.py"
        for name in ("app.py", "main.py", "server.py", "run.py"):
            if source.read_text(tree, name) is not None:
                return name, f"{name} at the top level"
        return "", "no entry point found (app.py, main.py, __main__.py, scripts): set command"

    def _option(self, name: str) -> Option:
        return next(o for o in self.options if o.name == name)

    def _suggest(self, options: dict[str, str], evidence: list[str], name: str, value: str) -> None:
        # Detected values come from an untrusted tree: only suggest what the form would accept.
        option = self._option(name)
        try:
            options[name] = option.clean(value)
        except OptionError as exc:
            evidence.append(f"not suggesting {name} {_shown(value)}: {exc.message}")


def exec_form(command: str) -> list[str]:
    """The ENTRYPOINT list for a validated command: a leading ``x.py`` runs with python."""
    words = command.split()
    return ["python", *words] if words[0].endswith(".py") else words


def _is_requirement(line: str) -> bool:
    line = line.split(" #", 1)[0].strip()
    return bool(line) and not line.startswith(("#", "-"))


def _shown(text: str, limit: int = 80) -> str:
    """A detected string made safe to show: no control characters, bounded length."""
    cleaned = "".join("?" if find_control_char(ch) else ch for ch in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."
