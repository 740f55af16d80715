"""Crossport's own image for the end-to-end tests: this repository built by its Python plugin
through a portal's API (once per session), and helpers to run and watch containers."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from stack import built, commit_all, platform_manifests, registry_index, unique_image

REPO = Path(__file__).resolve().parents[1]

# x86-64 and ARM servers: the arm64 half builds (and starts) under the stack's QEMU.
PLATFORMS = ["linux/amd64", "linux/arm64"]
# What the container's portal needs of the stack: the engine, the base-image mirror, the build
# network, the BuildKit image, and which of the machine's services it may reach.
ENGINE_SETTINGS = (
    "DOCKER_HOST",
    "PORTAL_BASE_IMAGE_MIRROR",
    "PORTAL_BUILD_NETWORK",
    "PORTAL_BUILDKIT_IMAGE",
    "PORTAL_BINFMT_IMAGE",
    "PORTAL_OUTBOUND_ALLOW",
)


def source_tree(tmp_path_factory: pytest.TempPathFactory) -> str:
    """This repository as a new git repository: the files git tracks or would track (the
    working tree's versions, so a change under test is built), nothing it ignores."""
    work = tmp_path_factory.mktemp("crossport-src")
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = REPO / name
        if source.is_file() and not source.is_symlink():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode & 0o777)
    commit_all(work, "crossport")
    return f"file://{work}"


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr[-2000:]}"
    return proc.stdout.strip()


def logs(container: str) -> str:
    """What the container wrote, both streams (the portal logs to stderr)."""
    proc = subprocess.run(
        ["docker", "logs", container],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.stdout


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def serving(url: str, container: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if get(url + "/healthz")[0] == 200:
                return
        except OSError:
            pass
        state = docker("inspect", "-f", "{{.State.Status}}", container)
        if state != "running" or time.monotonic() > deadline:
            pytest.fail(f"the image does not serve ({state}):\n{logs(container)}")
        time.sleep(0.5)


OPTIONS = {
    "python_version": "3.13",
    "command": "python manage.py serve --host 0.0.0.0 --port 8000",
    "system_packages": "git docker-cli docker-buildx",
    "env": "PORTAL_DATA_DIR=/data",
    "data_dir": "/data",
}


def build_crossport_image(
    portal: Any, persona: Any, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Register this repository in the portal, build it for linux/amd64 and linux/arm64 and
    return the image's reference by digest (its index)."""
    token, git_url = persona.token, source_tree(tmp_path_factory)
    status, detected = portal.api(
        "POST", "/api/v1/detect", token, {"team": persona.team, "git_url": git_url, "ref": "main"}
    )
    assert status == 200 and detected["language"] == "python", detected
    # The plugin reads this repository as what it is: a pyproject package needing Python 3.12+.
    assert detected["options"]["install"] == "pyproject", detected
    assert detected["options"]["python_version"] == "3.12", detected
    image = unique_image("crossport")
    options = {
        **detected["options"],
        **OPTIONS,
        "index_url": os.environ.get("PORTAL_TEST_PYPI", "http://127.0.0.1:3141/simple/"),
    }
    build = built(
        portal,
        token,
        {
            "team": persona.team,
            "name": "crossport",
            "language": "python",
            "git_url": git_url,
            "image": image,
            "platforms": PLATFORMS,
            "options": options,
        },
    )
    digest, index = registry_index(image, "latest")
    assert build["manifest"]["digest"] == digest
    assert sorted(platform_manifests(index)) == PLATFORMS
    return f"{image}@{digest}"
