"""Crossport's own image, built by Crossport: this repository registered through the API and
built by its Python plugin on the stack's Python 3.13 stand-in, from the stack's package index
and Debian repository. The image then serves the portal as a user that is not root, with its
state in a /data volume that outlives the container and static files from WhiteNoise; that
portal runs a real two-platform build on the engine whose socket it is given (git, docker and
buildx are in the image); and the same image runs a build worker that drains on SIGTERM and
exits 0.

linux/amd64 only: `dockerfile` (a Go extension Crossport parses Dockerfiles with) publishes no
Linux aarch64 wheel, and its sdist needs Go and the Go module proxy to build (README,
"Crossport's own image"). Scale-out configuration only: the worker needs PostgreSQL and Redis,
and the embedded run would build the same image again."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fakes import write_hello
from stack import (
    commit_all,
    create_database,
    drop_database,
    free_port,
    platform_manifests,
    registry_index,
    unique_image,
    wait_finished,
)

REPO = Path(__file__).resolve().parents[2]

PLATFORM = "linux/amd64"
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


def _source_tree(tmp_path_factory: pytest.TempPathFactory) -> str:
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


def _docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr[-2000:]}"
    return proc.stdout.strip()


def _logs(container: str) -> str:
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


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _serving(url: str, container: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if _get(url + "/healthz")[0] == 200:
                return
        except OSError:
            pass
        state = _docker("inspect", "-f", "{{.State.Status}}", container)
        if state != "running" or time.monotonic() > deadline:
            pytest.fail(f"the image does not serve ({state}):\n{_logs(container)}")
        time.sleep(0.5)


def _built(
    portal: Any, token: str, project: dict[str, Any], more: Callable[[], str] = str
) -> dict[str, Any]:
    """Register the project through the portal's API, build it, and return the finished build;
    the test fails with its reason and last log lines (and `more()`) unless it succeeded."""
    status, created = portal.api("POST", "/api/v1/projects", token, project)
    assert status == 201, created
    status, build = portal.api("POST", f"/api/v1/projects/{created['id']}/builds", token, {})
    assert status == 201, build
    build = wait_finished(portal, token, build["id"], timeout=900)
    if build["state"] != "succeeded":
        log = portal.api("GET", f"/api/v1/builds/{build['id']}/log", token)[1]
        lines = "\n".join(ln["text"] for ln in log["lines"][-40:])
        pytest.fail(f"{build['reason']}\n{lines}\n{more()}")
    return build


@pytest.fixture
def cleanup() -> Any:
    containers: list[str] = []
    volumes: list[str] = []
    yield containers, volumes
    for name in containers:
        _docker("rm", "-f", name, check=False)
    for name in volumes:
        _docker("volume", "rm", "-f", name, check=False)


def test_crossport_builds_its_own_image_and_the_image_serves_and_works(
    portal: Any, persona: Any, tmp_path_factory: pytest.TempPathFactory, cleanup: Any
) -> None:
    if not portal.scale_out:
        pytest.skip("scale-out configuration only (the worker needs PostgreSQL and Redis)")
    containers, volumes = cleanup
    token, git_url = persona.token, _source_tree(tmp_path_factory)
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
        "python_version": "3.13",
        "index_url": os.environ.get("PORTAL_TEST_PYPI", "http://127.0.0.1:3141/simple/"),
        "command": "python manage.py serve --host 0.0.0.0 --port 8000",
        "system_packages": "git docker-cli docker-buildx",
        "env": "PORTAL_DATA_DIR=/data",
        "data_dir": "/data",
    }
    build = _built(
        portal,
        token,
        {
            "team": persona.team,
            "name": "crossport",
            "language": "python",
            "git_url": git_url,
            "image": image,
            "platforms": [PLATFORM],
            "options": options,
        },
    )
    digest, _ = registry_index(image, "latest")
    reference = f"{image}@{digest}"

    # `docker run -v data:/data <image>` serves the portal (the test engine has no bridge
    # network, so the container shares the host's and gets a free port instead of -p). It
    # builds on the engine whose socket it is given, with the stack's mirror and registry.
    volume = f"crossport-e2e-{uuid.uuid4().hex[:8]}"
    volumes.append(volume)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sources = tmp_path_factory.mktemp("self-image-sources")
    hello = sources / "hello"
    write_hello(hello)
    commit_all(hello, "hello")
    subprocess.run(["chown", "-R", "65532:65532", str(sources)], check=True)  # the app's user
    socket = "/var/run/docker.sock"
    run = [
        "run", "-d", "--network", "host", "-v", f"{volume}:/data",
        "-v", f"{socket}:{socket}", "--group-add", str(os.stat(socket).st_gid),
        "-v", f"{sources}:{sources}:ro", "-e", f"PORTAL_GIT_FILE_ROOTS={sources}",
        *(f"--env={name}" for name in ENGINE_SETTINGS if name in os.environ),
    ]  # fmt: skip
    first = _docker(*run, reference, "--port", str(port))
    containers.append(first)
    _serving(url, first)
    assert _docker("exec", first, "id", "-u") == "65532"  # not root
    status, page = _get(url + "/login/")
    assert status == 200 and b"Crossport" in page  # the templates are in the image
    status, css = _get(url + "/static/portal/app.css")  # WhiteNoise, from the image
    assert status == 200 and css == (REPO / "portal/static/portal/app.css").read_bytes()
    secret_key = _docker("exec", first, "cat", "/data/secret.key")
    assert len(secret_key) >= 50

    # Its own user and token, then a real two-platform build through its own API: git, docker
    # and buildx are in the image (system_packages).
    password = uuid.uuid4().hex
    made = _docker(
        "exec", "-e", f"PW={password}", first, "python", "manage.py", "portal_user", "otto",
        "--team", "self", "--admin", "--password-env", "PW",
    )  # fmt: skip
    inner = type(portal)(port=port, env={}, data_dir=sources)
    token = made.splitlines()[-1]
    hello_image = unique_image("self-hello")
    build = _built(
        inner,
        token,
        {
            "team": "self",
            "name": "hello",
            "language": "go",
            "git_url": f"file://{hello}",
            "image": hello_image,
            "platforms": ["linux/amd64", "linux/arm64"],
            "options": {},
        },
        more=lambda: _logs(first)[-3000:],
    )
    hello_digest, index = registry_index(hello_image, "latest")
    assert build["manifest"]["digest"] == hello_digest
    assert sorted(platform_manifests(index)) == ["linux/amd64", "linux/arm64"]

    # The volume outlives the container: a new one finds the same key (sessions survive) and
    # the same database (the build is there).
    _docker("rm", "-f", first)
    second = _docker(*run, reference, "--port", str(port))
    containers.append(second)
    _serving(url, second)
    assert _docker("exec", second, "cat", "/data/secret.key") == secret_key
    status, again = inner.api("GET", f"/api/v1/builds/{build['id']}", token)
    assert status == 200 and again["manifest"]["digest"] == hello_digest

    # The same image runs a build worker for the scale-out configuration: it migrates its own
    # database, waits for builds, and on SIGTERM drains and exits 0.
    database, database_url = create_database(os.environ["DATABASE_URL"])
    try:
        worker = _docker(
            "run", "-d", "--network", "host", "--entrypoint", "python",
            "-e", f"DATABASE_URL={database_url}", "-e", f"REDIS_URL={os.environ['REDIS_URL']}",
            "-e", f"PORTAL_CHANNEL_PREFIX=crossport-self-{uuid.uuid4().hex[:8]}",
            "-e", "PORTAL_DATA_DIR=/data", "-v", f"{volume}:/data",
            reference, "manage.py", "buildworker", "--poll", "0.5",
        )  # fmt: skip
        containers.append(worker)
        deadline = time.monotonic() + 90
        while "build worker " not in _logs(worker):
            running = _docker("inspect", "-f", "{{.State.Running}}", worker) == "true"
            assert running and time.monotonic() < deadline, _logs(worker)
            time.sleep(0.5)
        _docker("stop", "--time", "30", worker)
        exit_code = _docker("inspect", "-f", "{{.State.ExitCode}}", worker)
        assert exit_code == "0", _logs(worker)
        assert "stopping: no new builds" in _logs(worker)
    finally:
        drop_database(os.environ["DATABASE_URL"], database)
