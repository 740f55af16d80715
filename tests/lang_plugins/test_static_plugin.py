from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import dockerfile
import pytest

from dockerfile_helpers import arg_values, parse
from lang_plugins import PLUGINS, detect
from lang_plugins.base import OptionError
from lang_plugins.static import StaticPlugin

Golden = Callable[[str, str], None]
MakeTree = Callable[[dict[str, str]], Path]

SAMPLE = Path(__file__).resolve().parents[1] / "e2e" / "samples" / "static"
MIRROR = "localhost:5000/library"

RUNTIME = ["COPY", "COPY", "ENV", "USER", "EXPOSE", "CMD"]
SERVE_ONLY = ["FROM", *RUNTIME]
NPM_BUILD = ["FROM", "WORKDIR", "ARG", "COPY", "RUN", "COPY", "RUN", "FROM", *RUNTIME]

# Values a user might type to break out of a line. Accepted ones must stay inside their ARG.
HOSTILE = [
    '"',
    "\\",
    "$HOME",
    "${HOME}",
    "'",
    "`id`",
    "$(id)",
    "--build-arg FOO=bar",
    '" && rm -rf / #',
    "ARG X=1",
    "8080 AS x",
    "8080\nRUN id",
    "dist/ /etc/",
    "http://x/\\",
    "https://user:secret@npm.example.com/",
    "https://npm.example.com/?q=$(id)",
    "https://npm.example.com/ x",
    "https://npm.example.com/#frag",
    "-rf",
    "../etc",
    "/etc",
]
CONTROL = ["\nRUN rm -rf /", "a\x00b", "a\rb", "8\t080", "\x7f", "x\u2028RUN id"]
OPTION_NAMES = [
    "build",
    "output_dir",
    "spa",
    "port",
    "node_version",
    "npm_registry",
    "npmrc_secret",
]
DEFAULTS = {
    "build": "none",
    "output_dir": "",
    "spa": "no",
    "port": "8080",
    "node_version": "18",
    "npm_registry": "",
    "npmrc_secret": "",
}


def static() -> StaticPlugin:
    plugin = PLUGINS["static"]
    assert isinstance(plugin, StaticPlugin)
    return plugin


def render(raw: Mapping[str, object], mirror: str = "") -> str:
    plugin = static()
    return plugin.render(plugin.clean_options(raw), mirror=mirror).dockerfile


def caddyfile(commands: list[dockerfile.Command]) -> str:
    (copy,) = [c for c in commands if c.cmd == "COPY" and c.heredocs]
    assert copy.value == ("<<'EOF'", "/etc/caddy/Caddyfile")
    (heredoc,) = copy.heredocs
    return heredoc.content


def package_json(**fields: object) -> str:
    return json.dumps({"name": "site", "version": "1.0.0", **fields})


# --- registry entry and options ---


def test_registered_under_static() -> None:
    assert (static().key, static().label) == ("static", "Static site")
    assert [o.name for o in static().options] == OPTION_NAMES


def test_defaults() -> None:
    assert static().clean_options({}) == DEFAULTS


@pytest.mark.parametrize("value", ["1024", "3000", "8080", "9999", "10000", "65535", "60000"])
def test_port_accepts_unprivileged_ports(value: str) -> None:
    assert static().clean_options({"port": value})["port"] == value


@pytest.mark.parametrize(
    "value",
    ["0", "80", "443", "1023", "65536", "99999", "08080", "8080.0", "-1", "+8080", "８０８０"],
)
def test_port_rejects_anything_else(value: str) -> None:
    with pytest.raises(OptionError) as info:
        static().clean_options({"port": value})
    assert info.value.option == "port"
    assert "1024 to 65535" in info.value.message


@pytest.mark.parametrize(
    "value", [".", "dist", "public", "build/web", ".output/public", "_site", "a-b/c_d.e", "v1.2"]
)
def test_output_dir_accepts_relative_folders(value: str) -> None:
    assert static().clean_options({"output_dir": value})["output_dir"] == value


@pytest.mark.parametrize(
    "value",
    [
        "..",
        "../x",
        "dist/..",
        "dist/../..",
        "./dist",
        "dist/",
        "/dist",
        "dist//web",
        "-dist",
        "dist/-x",
        "my site",
        "dist*",
        "dist?",
        "$OUT",
        "dïst",
        "dist;id",
        "...",
    ],
)
def test_output_dir_rejects_anything_else(value: str) -> None:
    with pytest.raises(OptionError) as info:
        static().clean_options({"output_dir": value})
    assert info.value.option == "output_dir"


@pytest.mark.parametrize(
    "value",
    [
        "https://registry.npmjs.org/",
        "http://127.0.0.1:4873",
        "https://nexus.example.com/repository/npm-group/",
        "https://artifactory.example.com/artifactory/api/npm/npm-remote",
        "http://verdaccio:4873/",
    ],
)
def test_npm_registry_accepts_urls(value: str) -> None:
    assert static().clean_options({"npm_registry": value})["npm_registry"] == value


@pytest.mark.parametrize(
    "value",
    [
        "npm.example.com",
        "ftp://npm.example.com/",
        "https://",
        "https://-bad.example.com/",
        "https://user:pw@npm.example.com/",
        "https://npm.example.com/?token=x",
        "https://npm.example.com/#x",
        "https://npm.example.com/a b",
        'https://npm.example.com/"',
        "https://npm.example.com/$x",
        "https://npm.example.com:99999999/",
        "https://" + "a" * 300,
    ],
)
def test_npm_registry_rejects_anything_else(value: str) -> None:
    with pytest.raises(OptionError) as info:
        static().clean_options({"npm_registry": value})
    assert info.value.option == "npm_registry"


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("build", ["none", "npm"], ["yarn", "NPM", "true"]),
        ("spa", ["yes", "no"], ["true", "1", "Yes"]),
        ("node_version", ["18", "20", "22"], ["16", "18.20", "lts", "latest"]),
    ],
)
def test_choice_options(name: str, good: list[str], bad: list[str]) -> None:
    for value in good:
        assert static().clean_options({name: value})[name] == value
    for value in bad:
        with pytest.raises(OptionError) as info:
            static().clean_options({name: value})
        assert info.value.option == name
        assert "must be one of" in info.value.message


# --- rendering ---


def test_render_public_spa_golden(golden: Golden) -> None:
    text = render({"output_dir": "public", "spa": "yes", "port": "3000"}, mirror=MIRROR)
    golden("static_public_spa.Dockerfile", text)


def test_render_npm_golden(golden: Golden) -> None:
    rendered = static().render(static().clean_options({"build": "npm"}))
    golden("static_npm.Dockerfile", rendered.dockerfile)
    golden("static_npm.dockerignore", rendered.dockerignore)


def test_render_npm_all_options_golden(golden: Golden) -> None:
    text = render(
        {
            "build": "npm",
            "output_dir": ".output/public",
            "spa": "yes",
            "port": "9000",
            "node_version": "20",
            "npm_registry": "https://nexus.example.com/repository/npm-group/",
        },
        mirror=MIRROR,
    )
    golden("static_npm_registry_spa.Dockerfile", text)


def test_render_serve_only_structure() -> None:
    commands = parse(render({}))
    assert [c.cmd for c in commands] == SERVE_ONLY
    assert commands[0].value == ("caddy:2-alpine",) and commands[0].flags == ()
    site = commands[2]
    assert site.flags == ("--link",) and site.value == (".", "/srv/")
    assert commands[4].value == ("65532:65532",)
    assert commands[5].value == ("8080",)
    assert commands[6].json
    assert commands[6].value == (
        *("caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"),
    )
    assert "try_files" not in caddyfile(commands)


def test_render_npm_structure() -> None:
    commands = parse(render({"build": "npm", "output_dir": "build"}, mirror=MIRROR))
    assert [c.cmd for c in commands] == NPM_BUILD
    build, runtime = (c for c in commands if c.cmd == "FROM")
    assert build.flags == ("--platform=$BUILDPLATFORM",)
    assert build.value == (f"{MIRROR}/node:18-slim", "AS", "build")
    assert runtime.flags == ()
    assert runtime.value == (f"{MIRROR}/caddy:2-alpine",)
    assert arg_values(commands) == {"NPM_REGISTRY": ""}
    npm_ci, npm_build = (c for c in commands if c.cmd == "RUN")
    assert npm_ci.flags == ("--mount=type=cache,target=/root/.npm",)
    assert "npm ci" in npm_ci.original
    assert "npm run build" in npm_build.original and "[ ! -d build ]" in npm_build.original
    site = [c for c in commands if c.cmd == "COPY" and "--from=build" in c.flags]
    assert [c.value for c in site] == [("/src/build/", "/srv/")]


def test_render_npm_output_dot_copies_the_build_folder() -> None:
    commands = parse(render({"build": "npm", "output_dir": "."}))
    site = [c for c in commands if c.cmd == "COPY" and "--from=build" in c.flags]
    assert [c.value for c in site] == [("/src/", "/srv/")]


@pytest.mark.parametrize("raw", [{}, {"build": "npm"}, {"build": "npm", "spa": "yes"}])
def test_nothing_runs_in_the_per_platform_stage(raw: dict[str, object]) -> None:
    # The point of the plugin: every RUN belongs to a stage pinned to the build platform.
    pinned = False
    for command in parse(render(raw, mirror=MIRROR)):
        if command.cmd == "FROM":
            pinned = command.flags == ("--platform=$BUILDPLATFORM",)
        elif command.cmd == "RUN":
            assert pinned, command.original
    last_from = [c for c in parse(render(raw)) if c.cmd == "FROM"][-1]
    assert last_from.flags == ()


@pytest.mark.parametrize(("spa", "fallback"), [("yes", True), ("no", False)])
@pytest.mark.parametrize("port", ["1024", "8080", "65535"])
def test_caddyfile(spa: str, fallback: bool, port: str) -> None:
    commands = parse(render({"spa": spa, "port": port}))
    text = caddyfile(commands)
    assert f"\n:{port} {{\n" in text
    assert "\troot * /srv\n" in text
    assert "\tadmin off\n" in text and "\tauto_https off\n" in text
    assert ("\ttry_files {path} {path}/ /index.html\n" in text) is fallback
    assert text.index("file_server") > text.find("try_files")
    assert [c.value for c in commands if c.cmd == "EXPOSE"] == [(port,)]
    assert "$" not in text


def test_heredoc_is_followed_by_a_blank_line() -> None:
    # hadolint 2.15 cannot parse an instruction right after a heredoc's terminator.
    for raw in ({}, {"build": "npm", "spa": "yes"}):
        assert "\nEOF\n\nCOPY --link " in render(raw)


def test_render_without_syntax_directive() -> None:
    for raw in ({}, {"build": "npm"}):
        assert not any("syntax" in line for line in render(raw).splitlines()[:3])


def test_render_node_version() -> None:
    commands = parse(render({"build": "npm", "node_version": "22"}))
    assert commands[0].value == ("node:22-slim", "AS", "build")


def test_render_ignores_node_options_without_build() -> None:
    plain = render({})
    assert render({"node_version": "22", "npm_registry": "https://npm.example.com/"}) == plain


def test_render_cleans_options_itself() -> None:
    # port and output_dir land unquoted in the Dockerfile: render must not trust its input.
    for name, value in [("port", "8080\nRUN id"), ("output_dir", "x /etc"), ("build", "yarn")]:
        with pytest.raises(OptionError) as info:
            static().render({name: value})
        assert info.value.option == name


@pytest.mark.parametrize(
    "value",
    [
        "https://npm.example.com/%22quoted%22/",
        "https://npm.example.com/a+b~c/",
        "http://127.0.0.1:4873",
    ],
)
def test_npm_registry_stays_inside_one_arg(value: str) -> None:
    default = parse(render({"build": "npm"}))
    commands = parse(render({"build": "npm", "npm_registry": value}))
    assert [c.cmd for c in commands] == NPM_BUILD
    changed = [after for before, after in zip(default, commands, strict=True) if before != after]
    assert len(changed) == 1
    assert changed[0].cmd == "ARG" and changed[0].value[0].startswith("NPM_REGISTRY=")
    assert arg_values(commands) == {"NPM_REGISTRY": value}


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("name", OPTION_NAMES)
def test_hostile_values_rejected(name: str, value: str) -> None:
    with pytest.raises(OptionError) as info:
        static().clean_options({name: value})
    assert info.value.option == name


@pytest.mark.parametrize("value", CONTROL)
@pytest.mark.parametrize("name", OPTION_NAMES)
def test_control_characters_rejected(name: str, value: str) -> None:
    with pytest.raises(OptionError) as info:
        static().clean_options({name: value})
    assert info.value.option == name


def test_dockerignore() -> None:
    served = static().render(static().clean_options({})).dockerignore.splitlines()
    built = static().render(static().clean_options({"build": "npm"})).dockerignore.splitlines()
    for lines in (served, built):
        for pattern in [".git", "Dockerfile", ".dockerignore", "node_modules", "**/.DS_Store"]:
            assert pattern in lines
    # Served as is: secrets must not be published. Built: Vite and co. read .env at build time.
    for pattern in [".env", ".env.*", ".npmrc"]:
        assert pattern in served
        assert pattern not in built


# --- detection ---


def test_detect_root_index(make_tree: MakeTree) -> None:
    found = static().detect(make_tree({"index.html": "<h1>hi</h1>", "style.css": ""}))
    assert found is not None
    assert found.score == 0.3
    assert found.options == {"build": "none", "output_dir": "."}
    assert "index.html found: serving the top level" in found.evidence


@pytest.mark.parametrize("folder", ["public", "dist", "site", "build", "_site", "docs", "www"])
def test_detect_index_in_site_folder(make_tree: MakeTree, folder: str) -> None:
    found = static().detect(make_tree({f"{folder}/index.html": "x", "README.md": "x"}))
    assert found is not None
    assert found.options == {"build": "none", "output_dir": folder}


def test_detect_prefers_the_top_level(make_tree: MakeTree) -> None:
    found = static().detect(make_tree({"index.html": "x", "public/index.html": "y"}))
    assert found is not None
    assert found.options["output_dir"] == "."


def test_detect_nothing(make_tree: MakeTree) -> None:
    assert static().detect(make_tree({"README.md": "x", "src/index.html": "x"})) is None


def test_detect_missing_tree(tmp_path: Path) -> None:
    assert static().detect(tmp_path / "nope") is None


def test_detect_npm_build(make_tree: MakeTree) -> None:
    tree = make_tree(
        {
            "package.json": package_json(
                scripts={"build": "vite build"}, devDependencies={"vite": "5"}
            ),
            "package-lock.json": "{}",
            "index.html": "vite's template, not the site",
        }
    )
    found = static().detect(tree)
    assert found is not None
    assert found.score == 0.5
    assert found.options == {"build": "npm", "output_dir": "dist"}
    assert "package.json has a build script: vite build" in found.evidence
    assert "depends on vite, which writes dist" in found.evidence
    assert not any("package-lock" in line for line in found.evidence)


@pytest.mark.parametrize(
    ("deps", "output"),
    [
        ({"react-scripts": "5"}, "build"),
        ({"@sveltejs/kit": "2", "vite": "5"}, "build"),
        ({"gatsby": "5"}, "public"),
        ({"@11ty/eleventy": "2"}, "_site"),
        ({"next": "14"}, "out"),
        ({"nuxt": "3"}, ".output/public"),
        ({"webpack": "5", "left-pad": "1"}, "dist"),
        ({"left-pad": "1"}, "dist"),
    ],
)
def test_detect_output_dir_from_dependencies(
    make_tree: MakeTree, deps: dict[str, str], output: str
) -> None:
    tree = make_tree({"package.json": package_json(scripts={"build": "x"}, dependencies=deps)})
    found = static().detect(tree)
    assert found is not None
    assert found.options["output_dir"] == output


def test_detect_spa_router(make_tree: MakeTree) -> None:
    deps = {"react": "18", "react-router-dom": "6", "vite": "5"}
    tree = make_tree(
        {"package.json": package_json(scripts={"build": "vite build"}, dependencies=deps)}
    )
    found = static().detect(tree)
    assert found is not None
    assert found.options["spa"] == "yes"
    assert any("react-router" in line and "SPA fallback on" in line for line in found.evidence)


def test_detect_node_server_scores_lower(make_tree: MakeTree) -> None:
    deps = {"express": "4"}
    tree = make_tree({"package.json": package_json(scripts={"build": "tsc"}, dependencies=deps)})
    found = static().detect(tree)
    assert found is not None
    assert found.score == 0.3
    assert any("express" in line and "Node server" in line for line in found.evidence)


@pytest.mark.parametrize(
    ("files", "version"),
    [
        ({".nvmrc": "20\n"}, "20"),
        ({".nvmrc": "v22.3.0"}, "22"),
        ({".nvmrc": "lts/iron"}, "20"),
        ({".nvmrc": "lts/Hydrogen"}, "18"),
        ({".node-version": "18.19.1"}, "18"),
        ({".nvmrc": "16"}, None),
        ({".nvmrc": "node"}, None),
        ({".nvmrc": "20", ".node-version": "22"}, "20"),
        ({}, None),
    ],
)
def test_detect_node_version_files(
    make_tree: MakeTree, files: dict[str, str], version: str | None
) -> None:
    tree = make_tree({"package.json": package_json(scripts={"build": "x"}), **files})
    found = static().detect(tree)
    assert found is not None
    assert found.options.get("node_version") == version


@pytest.mark.parametrize(
    ("engines", "version"),
    [(">=18", "18"), ("^20.11.0", "20"), ("22.x", "22"), (">=14 <17", None), ("*", None)],
)
def test_detect_node_version_engines(
    make_tree: MakeTree, engines: str, version: str | None
) -> None:
    pkg = package_json(scripts={"build": "x"}, engines={"node": engines})
    found = static().detect(make_tree({"package.json": pkg}))
    assert found is not None
    assert found.options.get("node_version") == version
    if version is None and engines != "*":
        assert any("not one of 18, 20, 22" in line for line in found.evidence)


def test_detect_missing_lockfile(make_tree: MakeTree) -> None:
    tree = make_tree({"package.json": package_json(scripts={"build": "x"}), "yarn.lock": ""})
    found = static().detect(tree)
    assert found is not None
    note = next(line for line in found.evidence if "package-lock.json" in line)
    assert "yarn.lock is not used" in note and "npm ci needs one" in note
    (tree / "npm-shrinkwrap.json").write_text("{}")
    found = static().detect(tree)
    assert found is not None
    assert not any("npm ci needs one" in line for line in found.evidence)


def test_detect_package_without_build_script(make_tree: MakeTree) -> None:
    pkg = package_json(scripts={"start": "serve ."})
    found = static().detect(make_tree({"package.json": pkg, "public/index.html": "x"}))
    assert found is not None
    assert found.options == {"build": "none", "output_dir": "public"}
    assert any("no build script" in line for line in found.evidence)


def test_detect_package_without_build_script_or_index(make_tree: MakeTree) -> None:
    assert static().detect(make_tree({"package.json": package_json()})) is None


@pytest.mark.parametrize(
    "text",
    ["{not json", "[1, 2]", '"build"', '{"scripts": ["build"]}', '{"scripts": {"build": 1}}'],
)
def test_detect_bad_package_json_falls_back_to_index(make_tree: MakeTree, text: str) -> None:
    found = static().detect(make_tree({"index.html": "x", "package.json": text}))
    assert found is not None
    assert found.options == {"build": "none", "output_dir": "."}


def test_detect_deeply_nested_package_json(make_tree: MakeTree) -> None:
    found = static().detect(make_tree({"package.json": "[" * 100_000, "index.html": "x"}))
    assert found is not None
    assert found.options["build"] == "none"


def test_detect_loses_to_a_real_language(make_tree: MakeTree) -> None:
    tree = make_tree(
        {
            "go.mod": "module example.com/web\n\ngo 1.21\n",
            "main.go": "package main\n\nfunc main() {}\n",
            "static/index.html": "x",
            "index.html": "x",
        }
    )
    result = detect(tree)
    assert result is not None
    assert result[0].key == "go"


def test_detect_through_registry(make_tree: MakeTree) -> None:
    result = detect(make_tree({"public/index.html": "x"}))
    assert result is not None
    assert result[0] is static()


def test_detect_does_not_follow_symlinks_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "index.html").write_text("x")
    (outside / "package.json").write_text(package_json(scripts={"build": "x"}))
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "index.html").symlink_to(outside / "index.html")
    (tree / "public").symlink_to(outside)
    (tree / "package.json").symlink_to(outside / "package.json")
    assert static().detect(tree) is None


def test_detect_evidence_has_no_control_characters(make_tree: MakeTree) -> None:
    tree = make_tree({"package.json": package_json(scripts={"build": "x\x1b[31m" + "y" * 200})})
    found = static().detect(tree)
    assert found is not None
    line = next(line for line in found.evidence if line.startswith("package.json has a build"))
    assert "\x1b" not in line and line.endswith("...")


def test_detect_suggestions_are_valid_options(make_tree: MakeTree) -> None:
    tree = make_tree(
        {
            "package.json": package_json(
                scripts={"build": "ng build"},
                dependencies={"@angular/core": "17", "@angular/router": "17"},
                engines={"node": "^20.9.0"},
            ),
            "package-lock.json": "{}",
        }
    )
    found = static().detect(tree)
    assert found is not None
    assert static().clean_options(found.options) == {**DEFAULTS, **found.options}
    assert found.options["spa"] == "yes"
    assert any("dist/<project>/browser" in line for line in found.evidence)


# --- the end-to-end sample ---


def test_sample_app_is_detected_as_an_npm_build() -> None:
    found = static().detect(SAMPLE)
    assert found is not None
    assert found.options == {"build": "npm", "output_dir": "dist", "node_version": "18"}
    lock = json.loads((SAMPLE / "package-lock.json").read_text())
    package = json.loads((SAMPLE / "package.json").read_text())
    # No dependencies, so npm ci needs no network inside the build.
    assert lock["packages"][""].get("dependencies") is None
    assert "dependencies" not in package and "devDependencies" not in package
    commands = parse(
        static().render(static().clean_options(found.options), mirror=MIRROR).dockerfile
    )
    assert [c.cmd for c in commands] == NPM_BUILD
