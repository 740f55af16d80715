from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dockerfile_helpers import arg_values, parse
from lang_plugins import PLUGINS, detect
from lang_plugins.base import OptionError
from lang_plugins.python import (
    FALLBACK_SCRIPT,
    PLAN_SCRIPT,
    RESOLVE_SCRIPT,
    SOURCES_SCRIPT,
    PythonPlugin,
    exec_form,
)

Golden = Callable[[str, str], None]
MakeTree = Callable[[dict[str, str]], Path]

STAGES = ["FROM", "ARG", "ENV", "WORKDIR", "RUN"]
INSTRUCTIONS = [
    "FROM",  # sources: the requirements files, apart from the code
    "RUN",
    *STAGES,  # resolve, on the build platform, once for all platforms
    *STAGES,  # deps, on the build platform, per target platform
    *STAGES,  # fallback, on the target platform
    "FROM",
    "ENV",
    "COPY",
    "COPY",
    "COPY",
    "WORKDIR",
    "COPY",
    "USER",
    "ENTRYPOINT",
]
HTTPS_INDEX = "https://pypi.example.com/simple/"
HTTP_INDEX = "http://127.0.0.1:3141/simple/"

# Values a user might type to break out of the Dockerfile. All must be refused.
HOSTILE = [
    '"',
    "\\",
    "$HOME",
    "${HOME}",
    "'",
    "`id`",
    "$(id)",
    "app.py; id",
    "app.py && id",
    "app.py | sh",
    '" && rm -rf / #',
    'python", "-c", "import os',
    "app.py\\",
    "héllo.py",
    "-c import os",
    "*.py",
    "app.py >out",
    "]",
]
CONTROL = ["\nRUN rm -rf /", "a\x00b", "a\rb", "app.py\t-v", "\x7f", "x\u2028RUN id"]
BAD_URLS = [
    "ftp://pypi.example.com/simple/",
    "https://user:secret@pypi.example.com/simple/",
    "https://token@pypi.example.com/simple/",
    "https://pypi.example.com/simple/?x=1",
    "https://pypi.example.com/simple/#frag",
    "https://pypi.example.com/$HOME/",
    'https://pypi.example.com/"/',
    "https://pypi.example.com/a b/",
    "https://-bad.example.com/",
    "https://pypi.example.com:99999999/",
    "pypi.example.com/simple/",
    "file:///etc/passwd",
    "https://pypi.example.com/simple/\\",
    "https://xn--pypi.example.com/é/",
]


def py() -> PythonPlugin:
    plugin = PLUGINS["python"]
    assert isinstance(plugin, PythonPlugin)
    return plugin


def render(raw: dict[str, object], mirror: str = "") -> str:
    plugin = py()
    return plugin.render(plugin.clean_options(raw), mirror=mirror).dockerfile


def entrypoint(source: str) -> list[str]:
    last = parse(source)[-1]
    assert last.cmd == "ENTRYPOINT" and last.json
    return list(last.value)


# --- registry entry and options ---


def test_registered_under_python() -> None:
    assert (py().key, py().label) == ("python", "Python")
    assert [o.name for o in py().options] == [
        "install",
        "python_version",
        "fallback",
        "command",
        "index_url",
        "system_packages",
        "env",
        "data_dir",
        "pip_secret",
    ]


def test_defaults() -> None:
    assert py().clean_options({}) == {
        "install": "requirements",
        "python_version": "3.11",
        "fallback": "slim",
        "command": "app.py",
        "index_url": "",
        "system_packages": "",
        "env": "",
        "data_dir": "",
        "pip_secret": "",
    }


@pytest.mark.parametrize("value", ["3.9", "3.10", "3.11", "3.12", "3.13"])
def test_python_version_choices(value: str) -> None:
    assert py().clean_options({"python_version": value})["python_version"] == value


@pytest.mark.parametrize(
    "value", ["3", "3.11.2", "2.7", "3.14", "latest", "3.11-slim", "3.11 AS x"]
)
def test_python_version_rejects_anything_else(value: str) -> None:
    with pytest.raises(OptionError) as info:
        py().clean_options({"python_version": value})
    assert info.value.option == "python_version"
    assert "must be one of" in info.value.message


@pytest.mark.parametrize("value", ["pip", "setup.py", "poetry", "Requirements"])
def test_install_rejects_unknown_modes(value: str) -> None:
    with pytest.raises(OptionError) as info:
        py().clean_options({"install": value})
    assert info.value.option == "install"


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("app.py", ["python", "app.py"]),
        ("src/server.py --port=8000", ["python", "src/server.py", "--port=8000"]),
        ("python -m app", ["python", "-m", "app"]),
        ("python3 -m http.server 8000", ["python3", "-m", "http.server", "8000"]),
        ("gunicorn app:app -b 0.0.0.0:8000", ["gunicorn", "app:app", "-b", "0.0.0.0:8000"]),
        ("uvicorn  main:app   --host=0.0.0.0", ["uvicorn", "main:app", "--host=0.0.0.0"]),
        ("my-tool serve --user=me@example.com", ["my-tool", "serve", "--user=me@example.com"]),
        # Looks like an instruction, but in exec form it is only a program name.
        ("ARG X=1", ["ARG", "X=1"]),
    ],
)
def test_command_becomes_exec_form(command: str, argv: list[str]) -> None:
    assert exec_form(py().clean_options({"command": command})["command"]) == argv
    assert entrypoint(render({"command": command})) == argv


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_commands_rejected(value: str) -> None:
    with pytest.raises(OptionError) as info:
        py().clean_options({"command": value})
    assert info.value.option == "command"


@pytest.mark.parametrize(
    "value",
    [
        HTTPS_INDEX,
        HTTP_INDEX,
        "https://pypi.example.com",
        "https://nexus.corp.example:8443/repository/pypi-all/simple",
        "http://[::1]:3141/root/pypi/+simple/",
        "https://artifactory.example.com/api/pypi/pypi-remote/simple/;x=1,y=%20",
    ],
)
def test_index_url_accepts_simple_index_urls(value: str) -> None:
    assert py().clean_options({"index_url": value})["index_url"] == value


@pytest.mark.parametrize("value", BAD_URLS + HOSTILE)
def test_index_url_rejects_anything_else(value: str) -> None:
    with pytest.raises(OptionError) as info:
        py().clean_options({"index_url": value})
    assert info.value.option == "index_url"


@pytest.mark.parametrize("value", CONTROL)
@pytest.mark.parametrize("name", ["install", "python_version", "command", "index_url"])
def test_control_characters_rejected(name: str, value: str) -> None:
    with pytest.raises(OptionError) as info:
        py().clean_options({name: value})
    assert info.value.option == name


def test_render_cleans_options_itself() -> None:
    # python_version and install land unquoted in the Dockerfile: never trust a raw mapping.
    for name, value in [("python_version", "3.11 AS x\nRUN id"), ("install", "x <<EOF")]:
        with pytest.raises(OptionError) as info:
            py().render({name: value})
        assert info.value.option == name


# --- rendering ---


def test_render_pyproject_mirror_https_index_golden(golden: Golden) -> None:
    text = render(
        {
            "install": "pyproject",
            "python_version": "3.12",
            "command": "gunicorn app:app -b 0.0.0.0:8000",
            "index_url": HTTPS_INDEX,
        },
        mirror="localhost:5000/library",
    )
    golden("python_pyproject_mirror_https_index.Dockerfile", text)


def test_render_http_index_golden(golden: Golden) -> None:
    text = render({"command": "python -m app", "index_url": HTTP_INDEX})
    golden("python_http_index.Dockerfile", text)


def test_render_default_structure() -> None:
    commands = parse(render({}))
    assert [c.cmd for c in commands] == INSTRUCTIONS
    sources, resolve, deps, fallback, runtime = (c for c in commands if c.cmd == "FROM")
    assert sources.flags == resolve.flags == deps.flags == ("--platform=$BUILDPLATFORM",)
    assert sources.value == ("python:3.11-slim", "AS", "sources")
    assert resolve.value == ("python:3.11-slim", "AS", "resolve")
    assert deps.value == ("python:3.11-slim", "AS", "deps")
    # The resolve stage names no target argument: BuildKit runs it once for every platform.
    resolve_args, deps_args, _ = (c.value for c in commands if c.cmd == "ARG")
    assert not any(arg.startswith("TARGET") for arg in resolve_args)
    assert {"TARGETPLATFORM", "TARGETARCH", "TARGETVARIANT"} <= set(deps_args)
    # The fallback runs on the runtime's slim image by default: nothing extra to pull.
    assert fallback.flags == () and fallback.value == ("python:3.11-slim", "AS", "fallback")
    assert runtime.flags == () and runtime.value == ("python:3.11-slim",)
    assert arg_values(commands) == {}
    sources_run, resolve_run, plan, fallback_run = (c for c in commands if c.cmd == "RUN")
    assert sources_run.flags == ("--mount=type=bind,target=/src",)  # the whole tree, read-only
    assert [(h.name, h.content) for h in sources_run.heredocs] == [
        ("END_OF_SOURCES", SOURCES_SCRIPT)
    ]
    # The stages that install read the requirements files only.
    only_requirements = "--mount=type=bind,from=sources,source=/sources,target=/src,rw"
    assert all(only_requirements in run.flags for run in (resolve_run, plan, fallback_run))
    assert "--mount=type=cache,target=/root/.cache/pip" in resolve_run.flags
    assert resolve_run.value == ("python - requirements <<'END_OF_RESOLVE'",)
    assert [(h.name, h.content) for h in resolve_run.heredocs] == [
        ("END_OF_RESOLVE", RESOLVE_SCRIPT)
    ]
    assert "--mount=type=cache,target=/root/.cache/pip" in plan.flags
    assert "--mount=type=bind,from=resolve,source=/resolved,target=/resolved" in plan.flags
    assert plan.value == ("python - <<'END_OF_PLAN'",)
    assert [(h.name, h.content) for h in plan.heredocs] == [("END_OF_PLAN", PLAN_SCRIPT)]
    assert [(h.name, h.content) for h in fallback_run.heredocs] == [
        ("END_OF_FALLBACK", FALLBACK_SCRIPT)
    ]
    assert "--mount=type=bind,from=deps,source=/plan,target=/plan" in fallback_run.flags
    env = next(c for c in commands[18:] if c.cmd == "ENV")
    assert env.value[:2] == ("PYTHONPATH", "/install")
    copies = [c.flags + c.value for c in commands[18:] if c.cmd == "COPY"][:3]
    assert copies == [
        ("--link", "--from=resolve", "/pure", "/install"),
        ("--link", "--from=deps", "/install", "/install"),
        ("--link", "--from=fallback", "/install", "/install"),
    ]
    assert entrypoint(render({})) == ["python", "app.py"]


def test_render_without_syntax_directive() -> None:
    # The dockerfile frontend image cannot be pulled offline: use the builtin frontend.
    assert not render({}).startswith("# syntax")
    assert "syntax=" not in render({})


def test_render_mirror_and_version() -> None:
    commands = parse(render({"python_version": "3.12"}, mirror="localhost:5000/library/"))
    assert [c.value[0] for c in commands if c.cmd == "FROM"] == [
        "localhost:5000/library/python:3.12-slim",
        "localhost:5000/library/python:3.12-slim",
        "localhost:5000/library/python:3.12-slim",
        "localhost:5000/library/python:3.12-slim",
        "localhost:5000/library/python:3.12-slim",
    ]


def test_full_fallback_image_brings_a_compiler() -> None:
    commands = parse(render({"fallback": "full"}, mirror="localhost:5000/library"))
    froms = [c.value for c in commands if c.cmd == "FROM"]
    assert froms[3] == ("localhost:5000/library/python:3.11", "AS", "fallback")
    with pytest.raises(OptionError, match="fallback"):
        py().clean_options({"fallback": "gcc"})


def test_render_pyproject_mode() -> None:
    commands = parse(render({"install": "pyproject"}))
    resolve = next(c for c in commands if c.cmd == "RUN")
    assert resolve.value == ("python - pyproject <<'END_OF_RESOLVE'",)
    # The project's own wheel is built from the whole tree: no sources stage.
    assert "--mount=type=bind,target=/src,rw" in resolve.flags
    assert all("AS sources" not in c.original for c in commands)


@pytest.mark.parametrize(
    ("url", "args"),
    [
        (HTTPS_INDEX, {"PIP_INDEX_URL": HTTPS_INDEX}),
        (HTTP_INDEX, {"PIP_INDEX_URL": HTTP_INDEX, "PIP_TRUSTED_HOST": "127.0.0.1:3141"}),
        (
            "http://[::1]/simple",
            {"PIP_INDEX_URL": "http://[::1]/simple", "PIP_TRUSTED_HOST": "[::1]"},
        ),
    ],
)
def test_index_url_is_a_global_arg(url: str, args: dict[str, str]) -> None:
    commands = parse(render({"index_url": url}))
    assert [c.cmd for c in commands] == ["ARG"] * len(args) + INSTRUCTIONS
    assert arg_values(commands) == args
    # Each stage that runs pip inherits the global default by declaring the ARG bare.
    stage_args = [c.value for c in commands[len(args) :] if c.cmd == "ARG"]
    assert all("PIP_INDEX_URL" in v and "PIP_TRUSTED_HOST" in v for v in stage_args)


@pytest.mark.parametrize(
    "url",
    [
        "https://pypi.example.com/simple/;x=1",
        "https://pypi.example.com/%22%24(id)/".replace("(id)", "%28id%29"),
        "https://pypi.example.com/a;b=c,d+e~f:g/",
    ],
)
def test_odd_but_valid_index_url_stays_inside_one_arg(url: str) -> None:
    commands = parse(render({"index_url": url}))
    assert [c.cmd for c in commands] == ["ARG", *INSTRUCTIONS]
    assert arg_values(commands) == {"PIP_INDEX_URL": url}


def test_heredoc_terminators_cannot_end_the_scripts_early() -> None:
    # BuildKit ends a heredoc at an exact line; hadolint at a line that starts with the word.
    for script, word in [
        (SOURCES_SCRIPT, "END_OF_SOURCES"),
        (RESOLVE_SCRIPT, "END_OF_RESOLVE"),
        (PLAN_SCRIPT, "END_OF_PLAN"),
        (FALLBACK_SCRIPT, "END_OF_FALLBACK"),
    ]:
        assert not any(line.lstrip().startswith(word) for line in script.splitlines())


def test_plan_scripts_are_valid_python() -> None:
    compile(SOURCES_SCRIPT, "sources", "exec")
    compile(RESOLVE_SCRIPT, "resolve", "exec")
    compile(PLAN_SCRIPT, "plan", "exec")


def test_plan_script_runs_nothing_for_an_unknown_platform(tmp_path: Path) -> None:
    # The architecture check happens before anything is written or installed.
    env = {**os.environ, "TARGETARCH": "riscv64", "TARGETVARIANT": "", "TARGETPLATFORM": "x"}
    run = subprocess.run(
        ["python3", "-"],
        input=PLAN_SCRIPT,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 1
    assert "crossport: no manylinux wheels exist for x" in run.stderr


def run_sources(tree: Path, out: Path) -> str:
    run = subprocess.run(
        [sys.executable, "-", str(tree), str(out)],
        input=SOURCES_SCRIPT,
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_the_sources_step_keeps_the_requirements_files_and_what_they_include(
    make_tree: MakeTree, tmp_path: Path
) -> None:
    tree = make_tree(
        {
            "requirements.txt": "-r requirements/base.txt\n--constraint=constraints.txt\nflask\n",
            "requirements/base.txt": "-r common.txt  # nested, relative to this file\ndjango\n",
            "requirements/common.txt": "orjson==3.11.3\n",
            "requirements/dev.txt": "pytest\n",
            "constraints.txt": "flask<4\n",
            "app.py": "print('hello')\n",
            "service/views.py": "x = 1\n",
        }
    )
    out = tmp_path / "sources"
    assert "read from 4 requirements file(s)" in run_sources(tree, out)
    assert files(out) == [
        "constraints.txt",
        "requirements.txt",
        "requirements/base.txt",
        "requirements/common.txt",
    ]


@pytest.mark.parametrize(
    "line", ["-e .", "./libs/shared", "/abs/path", "shared @ file:///src/libs/shared", "file:libs"]
)
def test_a_requirement_into_the_tree_keeps_the_whole_tree(
    line: str, make_tree: MakeTree, tmp_path: Path
) -> None:
    tree = make_tree({"requirements.txt": f"django\n{line}\n", "libs/shared/setup.py": ""})
    out = tmp_path / "sources"
    assert "read whole" in run_sources(tree, out)
    assert files(out) == ["libs/shared/setup.py", "requirements.txt"]


def test_an_include_outside_the_tree_is_not_copied(make_tree: MakeTree, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("-r x\n")
    tree = make_tree({"requirements.txt": "-r ../../secret.txt\n-r /etc/passwd\n"})
    out = tmp_path / "sources"
    run_sources(tree, out)
    assert files(out) == ["requirements.txt"]


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs sh")
def test_fallback_script_is_valid_sh() -> None:
    assert (
        subprocess.run(["sh", "-n"], input=FALLBACK_SCRIPT, text=True, check=False).returncode == 0
    )


# The runtime image's options (lang_plugins/image.py): what each grammar takes as it is, and what
# it refuses, naming the option.
IMAGE_OPTIONS_ACCEPTED = {
    "system_packages": ["git", "git docker-cli docker-buildx", "libstdc++6 python3.13"],
    "env": ["A=1", "PORTAL_DATA_DIR=/data PORTAL_ALLOWED_HOSTS=a.example,localhost", "EMPTY="],
    "data_dir": ["/data", "/var/lib/app", "/srv/app-data", "/opt/app/state"],
}
IMAGE_OPTIONS_REFUSED = {
    "system_packages": [
        "-y", "git -o=x", "git;id", "git && id", "Git", "git=1:2.47", "x", "git\ncurl",
        "$(id)", "a/b",
    ],
    "env": [
        "A=$HOME",  # would expand
        'A="x"', "A=x\\", "A", "1A=x", "A=x;B=y",
        "PATH=/tmp",  # the plugin's own
        "PYTHONPATH=/x", "A=1 PYTHONUNBUFFERED=0", "A=x\nRUN id",
    ],
    "data_dir": [
        "data", "/", "/usr", "/usr/local", "/etc/app", "/app", "/app/var", "/install", "/var",
        "/tmp", "/data/../etc", "/a/./b", "/data/", "/da ta", "/data;x", '/"x"', "/$HOME",
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("option", "value"),
    [(option, value) for option, values in IMAGE_OPTIONS_ACCEPTED.items() for value in values],
)
def test_image_options_accept_their_grammar(option: str, value: str) -> None:
    assert py().clean_options({option: value})[option] == value


@pytest.mark.parametrize(
    ("option", "value"),
    [(option, value) for option, values in IMAGE_OPTIONS_REFUSED.items() for value in values],
)
def test_image_options_refuse_anything_else(option: str, value: str) -> None:
    with pytest.raises(OptionError) as err:
        py().clean_options({option: value})
    assert err.value.option == option


def test_system_packages_install_in_the_runtime_stage_before_the_app() -> None:
    out = render({"system_packages": "git  docker-cli"})
    runtime = out.rsplit("\nFROM ", 1)[1]
    install = "apt-get install -y --no-install-recommends git docker-cli \\\n"
    assert install in runtime and "rm -rf /var/lib/apt/lists/*" in runtime
    # Installed as root, before the user switch, and before the app so a code change keeps it.
    assert runtime.index(install) < runtime.index("COPY --link . .") < runtime.index("USER ")
    assert "apt-get" not in render({})


def test_env_is_set_in_the_runtime_stage_only() -> None:
    out = render({"env": "PORTAL_DATA_DIR=/data MODE=prod"})
    runtime = out.rsplit("\nFROM ", 1)[1]
    assert 'ENV PORTAL_DATA_DIR="/data" MODE="prod"\n' in runtime
    assert out.count("PORTAL_DATA_DIR") == 1


def test_data_dir_is_owned_by_the_app_user_and_a_volume() -> None:
    out = render({"data_dir": "/data"})
    # Made on the build platform: no step of the runtime stage runs (no emulation).
    assert (
        "FROM --platform=$BUILDPLATFORM python:3.11-slim AS data\nRUN mkdir -m 0750 /data\n" in out
    )
    runtime = out.rsplit("\nFROM ", 1)[1]
    assert (
        'COPY --link --chown=65532:65532 --from=data /data "/data"\nVOLUME ["/data"]\n'
        'ENV HOME="/data"\n'
    ) in runtime
    # The project's own environment comes after HOME, so it may set HOME itself.
    out = render({"data_dir": "/data", "env": "HOME=/data/home"})
    assert out.index('ENV HOME="/data"') < out.index('ENV HOME="/data/home"')
    assert "RUN" not in runtime and runtime.count("USER 65532:65532") == 1
    assert " AS data" not in render({})


def test_dockerignore() -> None:
    lines = py().render(py().clean_options({})).dockerignore.splitlines()
    for pattern in [".git", "Dockerfile", ".dockerignore", ".venv", "**/__pycache__"]:
        assert pattern in lines
    assert "requirements.txt" not in lines and "pyproject.toml" not in lines


HADOLINT = shutil.which("hadolint") or shutil.which(
    "hadolint", path=str(Path(sys.executable).parent)
)


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed")
@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"install": "pyproject", "index_url": HTTP_INDEX, "command": "python -m app"},
        {"env": "APP_DATA=/data MODE=prod", "data_dir": "/data", "system_packages": "git curl"},
    ],
)
def test_hadolint_finds_nothing(raw: dict[str, object], tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(render(raw))
    run = subprocess.run(
        [str(HADOLINT), "--format", "json", str(path)], capture_output=True, text=True, check=False
    )
    assert json.loads(run.stdout or "[]") == [], run.stdout + run.stderr


# --- detection ---

REQS = "# pinned\norjson==3.11.3\n\n-r base.txt\n--index-url https://x/\nrequests>=2 # http\n"
PYPROJECT = """\
[build-system]
requires = ["flit_core>=3.4"]
build-backend = "flit_core.buildapi"

[project]
name = "hello"
version = "0.1.0"
requires-python = ">=3.12"
dependencies = ["orjson"]

[project.scripts]
hello-serve = "hello.server:main"
hello = "hello:main"
"""


def test_detect_requirements_app(make_tree: MakeTree) -> None:
    found = py().detect(make_tree({"requirements.txt": REQS, "app.py": "print(1)\n"}))
    assert found is not None
    assert found.score == 0.8
    assert found.options == {"install": "requirements", "command": "app.py"}
    assert "requirements.txt lists 2 requirement(s)" in found.evidence
    assert "app.py at the top level" in found.evidence
    assert py().clean_options(found.options)["install"] == "requirements"


def test_detect_through_registry(make_tree: MakeTree) -> None:
    result = detect(make_tree({"requirements.txt": REQS, "main.py": ""}))
    assert result is not None
    plugin, found = result
    assert plugin is py()
    assert found.options["command"] == "main.py"


def test_detect_pyproject_package(make_tree: MakeTree) -> None:
    tree = make_tree({"pyproject.toml": PYPROJECT, "requirements.txt": REQS, "app.py": ""})
    found = py().detect(tree)
    assert found is not None
    assert found.score == 0.9
    # scripts sorted: "hello" before "hello-serve"; 3.12 is the lowest version >= 3.12.
    assert found.options == {"install": "pyproject", "python_version": "3.12", "command": "hello"}
    assert "pyproject.toml declares project hello" in found.evidence
    assert "requirements.txt is installed together with the project" in found.evidence
    assert "console script hello from [project.scripts]" in found.evidence


def test_detect_pyproject_with_only_tool_settings(make_tree: MakeTree) -> None:
    tree = make_tree({"pyproject.toml": "[tool.ruff]\nline-length = 100\n", "requirements.txt": ""})
    found = py().detect(tree)
    assert found is not None
    assert found.options["install"] == "requirements"
    assert "pyproject.toml only holds tool settings (no [project])" in found.evidence


def test_detect_setup_py(make_tree: MakeTree) -> None:
    found = py().detect(make_tree({"setup.py": "from setuptools import setup\nsetup()\n"}))
    assert found is not None
    assert (found.score, found.options["install"]) == (0.8, "pyproject")
    assert "setup.py found: the project is built as a wheel" in found.evidence


def test_detect_main_package(make_tree: MakeTree) -> None:
    tree = make_tree(
        {
            "requirements.txt": "",
            "hello/__main__.py": "",
            "not-an-identifier/__main__.py": "",
            "src/myapp/__main__.py": "",
            "app.py": "",
        }
    )
    found = py().detect(tree)
    assert found is not None
    assert found.options["command"] == "python -m hello"
    assert "package hello has a __main__.py" in found.evidence


def test_detect_main_package_in_src(make_tree: MakeTree) -> None:
    found = py().detect(make_tree({"requirements.txt": "", "src/myapp/__main__.py": ""}))
    assert found is not None
    assert found.options["command"] == "python -m myapp"


def test_detect_loose_python_files(make_tree: MakeTree) -> None:
    found = py().detect(make_tree({"tool.py": "print(1)\n"}))
    assert found is not None
    assert found.score == 0.4
    assert "command" not in found.options
    assert any("set command" in line for line in found.evidence)


def test_detect_not_python(make_tree: MakeTree) -> None:
    assert py().detect(make_tree({"go.mod": "module m\n", "main.go": "package main\n"})) is None


def test_detect_missing_tree(tmp_path: Path) -> None:
    assert py().detect(tmp_path / "nope") is None


@pytest.mark.parametrize(
    ("files", "version"),
    [
        ({".python-version": "3.12.1\n"}, "3.12"),
        ({".python-version": "3.10"}, "3.10"),
        ({".python-version": "3.99"}, None),
        ({".python-version": "pypy3.10"}, None),
        ({"pyproject.toml": '[project]\nname="x"\nrequires-python=">=3.8"\n'}, None),
        ({"pyproject.toml": '[project]\nname="x"\nrequires-python=">=3.13"\n'}, "3.13"),
        ({"pyproject.toml": '[project]\nname="x"\nrequires-python="==3.10.*"\n'}, "3.10"),
        ({"pyproject.toml": '[project]\nname="x"\nrequires-python="~=3.12"\n'}, "3.12"),
        ({"pyproject.toml": '[project]\nname="x"\nrequires-python=">=3.20"\n'}, None),
        ({"pyproject.toml": '[project]\nname="x"\nrequires-python=3\n'}, None),
    ],
)
def test_detect_python_version(
    make_tree: MakeTree, files: dict[str, str], version: str | None
) -> None:
    found = py().detect(make_tree({"requirements.txt": "", **files}))
    assert found is not None
    assert found.options.get("python_version") == version


def test_detect_bad_pyproject(make_tree: MakeTree) -> None:
    found = py().detect(make_tree({"pyproject.toml": "[project\nname=", "requirements.txt": ""}))
    assert found is not None
    assert found.options["install"] == "requirements"
    assert any(line.startswith("pyproject.toml is not valid TOML") for line in found.evidence)


def test_detect_does_not_suggest_invalid_commands(make_tree: MakeTree) -> None:
    pyproject = '[project]\nname = "x"\n[project.scripts]\n"$(id)" = "x:main"\n'
    found = py().detect(make_tree({"pyproject.toml": pyproject}))
    assert found is not None
    assert "command" not in found.options
    assert any(line.startswith("not suggesting command $(id)") for line in found.evidence)


def test_detect_does_not_follow_symlinks_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "requirements.txt").write_text("orjson\n")
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "requirements.txt").symlink_to(outside / "requirements.txt")
    assert py().detect(tree) is None


def test_detect_evidence_has_no_control_characters(make_tree: MakeTree) -> None:
    found = py().detect(make_tree({"pyproject.toml": '[project]\nname = "a\\u001b[31mred"\n'}))
    assert found is not None
    assert "pyproject.toml declares project a?[31mred" in found.evidence
