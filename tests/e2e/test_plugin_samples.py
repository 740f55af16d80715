"""Every language plugin's sample app through the portal, for three platforms, for real: the
build succeeds, the index holds exactly those platforms, and each image, run under QEMU where
foreign, proves its architecture."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stack import PLATFORMS, built, registry_index, unique_image

SAMPLES = Path(__file__).parent / "samples"
GIT = ["git", "-c", "user.name=E2E", "-c", "user.email=e2e@example.invalid"]


def _docker_run(reference: str, platform: str, *extra: str) -> str:
    """`docker run` the image; `extra` may start with --entrypoint ENTRY then the command."""
    options, command = list(extra[:2]), list(extra[2:])
    proc = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            f"--platform={platform}",
            *options,
            reference,
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def _prints(expected: dict[str, str]) -> Callable[[str, str], None]:
    def check(reference: str, platform: str) -> None:
        assert expected[platform] in _docker_run(reference, platform)

    return check


def _equals(expected: dict[str, str]) -> Callable[[str, str], None]:
    def check(reference: str, platform: str) -> None:
        assert _docker_run(reference, platform) == expected[platform]

    return check


def _first_line(expected: dict[str, str]) -> Callable[[str, str], None]:
    def check(reference: str, platform: str) -> None:
        lines = _docker_run(reference, platform).splitlines()
        assert lines[0] == expected[platform]
        assert '"orjson"' in lines[1] and '"docopt":"0.6.2"' in lines[1]

    return check


SERVE_NESTED = """
caddy run --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null 2>&1 &
echo "arch=$(uname -m)"
for i in $(seq 1 30); do
  page=$(wget -qO- http://127.0.0.1:8080/nested/page.html 2>/dev/null) && break
  sleep 1
done
echo "$page" | grep -e "<h1>"
echo "fallback: $(wget -qO- http://127.0.0.1:8080/no/such/route 2>&1 | grep -o -e "404 Not Found" -e "<h1>[^<]*</h1>")"
"""
UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l"}


def _serves_nested_page(reference: str, platform: str) -> None:
    out = _docker_run(reference, platform, "--entrypoint", "/bin/sh", "-c", SERVE_NESTED)
    assert out.splitlines()[0] == f"arch={UNAME[platform]}", out
    assert "Crossport static sample: nested page" in out
    assert out.splitlines()[-1] == "fallback: 404 Not Found"


# key -> (options for an offline build, how to prove each platform's architecture)
CASES: dict[str, tuple[dict[str, str], Callable[[str, str], None]]] = {
    # Java prints System.getProperty("os.arch"), the JVM's own idea of the CPU.
    "java": (
        {},
        _equals({"linux/amd64": "amd64", "linux/arm64": "aarch64", "linux/arm/v7": "arm"}),
    ),
    # Python prints platform.machine(), then a line from the orjson wheel of that platform;
    # the wheels come from the stack's local index (builds never reach PyPI).
    "python": (
        {"index_url": os.environ.get("PORTAL_TEST_PYPI", "http://127.0.0.1:3141/simple/")},
        _first_line({"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l"}),
    ),
    # The static site: each container's own web server serves the nested page, and an unknown
    # path is a 404 (SPA fallback off by default).
    "static": ({}, _serves_nested_page),
    "go": (
        {},
        _prints(
            {
                "linux/amd64": "linux/amd64",
                "linux/arm64": "linux/arm64",
                "linux/arm/v7": "linux/arm",
            }
        ),
    ),
}


def _repo(key: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp(f"sample-{key}")
    shutil.copytree(SAMPLES / key, work, dirs_exist_ok=True)
    subprocess.run([*GIT, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*GIT, "-C", str(work), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(work), "commit", "-q", "-m", key], check=True)
    return f"file://{work}"


@pytest.mark.parametrize("key", sorted(p.name for p in SAMPLES.iterdir() if p.is_dir()))
def test_sample_builds_for_three_platforms(
    key: str, portal: Any, persona: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert key in CASES, f"sample {key} has no end-to-end case"
    options, prove = CASES[key]
    token = persona.token
    git_url = _repo(key, tmp_path_factory)
    status, detected = portal.api(
        "POST", "/api/v1/detect", token, {"team": persona.team, "git_url": git_url, "ref": "main"}
    )
    assert status == 200 and detected["language"] == key, detected
    image = unique_image(f"sample-{key}")
    build = built(
        portal,
        token,
        {
            "team": persona.team,
            "name": f"sample-{key}",
            "language": key,
            "git_url": git_url,
            "image": image,
            "platforms": PLATFORMS,
            "options": {**detected["options"], **options},
        },
    )
    digest, index = registry_index(image, "latest")
    assert build["manifest"]["digest"] == digest
    if key == "python":  # the build plan: what is shared was done once, the rest per platform
        log = portal.api("GET", f"/api/v1/builds/{build['id']}/log", token)[1]
        said = [ln["text"] for ln in log["lines"] if "crossport: " in ln["text"]]
        assert sum("every platform: 1 pure-Python packages installed once" in t for t in said) == 1
        for platform in PLATFORMS:
            assert any(
                f"{platform}: 1 packages with compiled code: every one a wheel" in t for t in said
            )
    assert sorted(build["manifest"]["platforms"]) == sorted(PLATFORMS)
    for platform in PLATFORMS:
        prove(f"{image}@{digest}", platform)
