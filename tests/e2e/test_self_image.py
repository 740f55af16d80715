"""Crossport's own image, built by Crossport: this repository registered through the API and
built by its Python plugin on the stack's Python 3.13 stand-in, from the stack's package index
and Debian repository. The image then serves the portal as a user that is not root, with its
state in a /data volume that outlives the container and static files from WhiteNoise; that
portal runs a real two-platform build on the engine whose socket it is given (git, docker and
buildx are in the image); and the same image runs a build worker that drains on SIGTERM and
exits 0.

The image is built for linux/amd64 and linux/arm64; the arm64 one starts under the stack's QEMU
and reads Dockerfiles with its own aarch64 build of `dockerfile` (a Go extension PyPI has no
Linux aarch64 wheel of: the test stack compiles one, seeds/buildkit.sh). Scale-out
configuration only: the worker needs PostgreSQL and Redis, and the embedded run would build the
same image again."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from typing import Any

import pytest
from selfimage import ENGINE_SETTINGS, REPO, docker, get, logs, serving

from fakes import write_hello
from stack import (
    built,
    commit_all,
    create_database,
    drop_database,
    free_port,
    platform_manifests,
    registry_index,
    unique_image,
)


@pytest.fixture
def cleanup() -> Any:
    containers: list[str] = []
    volumes: list[str] = []
    yield containers, volumes
    for name in containers:
        docker("rm", "-f", name, check=False)
    for name in volumes:
        docker("volume", "rm", "-f", name, check=False)


def test_crossport_builds_its_own_image_and_the_image_serves_and_works(
    portal: Any, crossport_image: str, tmp_path_factory: pytest.TempPathFactory, cleanup: Any
) -> None:
    containers, volumes = cleanup
    reference = crossport_image

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
    first = docker(*run, reference, "--port", str(port))
    containers.append(first)
    serving(url, first)
    assert docker("exec", first, "id", "-u") == "65532"  # not root
    status, page = get(url + "/login/")
    assert status == 200 and b"Crossport" in page  # the templates are in the image
    status, css = get(url + "/static/portal/app.css")  # WhiteNoise, from the image
    assert status == 200 and css == (REPO / "portal/static/portal/app.css").read_bytes()
    secret_key = docker("exec", first, "cat", "/data/secret.key")
    assert len(secret_key) >= 50

    # Its own user and token, then a real two-platform build through its own API: git, docker
    # and buildx are in the image (system_packages).
    password = uuid.uuid4().hex
    made = docker(
        "exec", "-e", f"PW={password}", first, "python", "manage.py", "portal_user", "otto",
        "--team", "self", "--admin", "--password-env", "PW",
    )  # fmt: skip
    inner = type(portal)(port=port, env={}, data_dir=sources)
    token = made.splitlines()[-1]
    hello_image = unique_image("self-hello")
    build = built(
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
        more=lambda: logs(first)[-3000:],
    )
    hello_digest, index = registry_index(hello_image, "latest")
    assert build["manifest"]["digest"] == hello_digest
    assert sorted(platform_manifests(index)) == ["linux/amd64", "linux/arm64"]

    # The volume outlives the container: a new one finds the same key (sessions survive) and
    # the same database (the build is there).
    docker("rm", "-f", first)
    second = docker(*run, reference, "--port", str(port))
    containers.append(second)
    serving(url, second)
    assert docker("exec", second, "cat", "/data/secret.key") == secret_key
    status, again = inner.api("GET", f"/api/v1/builds/{build['id']}", token)
    assert status == 200 and again["manifest"]["digest"] == hello_digest

    # The same image runs a build worker for the scale-out configuration: it migrates its own
    # database, waits for builds, and on SIGTERM drains and exits 0.
    database, database_url = create_database(os.environ["DATABASE_URL"])
    try:
        worker = docker(
            "run", "-d", "--network", "host", "--entrypoint", "python",
            "-e", f"DATABASE_URL={database_url}", "-e", f"REDIS_URL={os.environ['REDIS_URL']}",
            "-e", f"PORTAL_CHANNEL_PREFIX=crossport-self-{uuid.uuid4().hex[:8]}",
            "-e", "PORTAL_DATA_DIR=/data", "-v", f"{volume}:/data",
            reference, "manage.py", "buildworker", "--poll", "0.5",
        )  # fmt: skip
        containers.append(worker)
        deadline = time.monotonic() + 90
        while "build worker " not in logs(worker):
            running = docker("inspect", "-f", "{{.State.Running}}", worker) == "true"
            assert running and time.monotonic() < deadline, logs(worker)
            time.sleep(0.5)
        docker("stop", "--time", "30", worker)
        exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", worker)
        assert exit_code == "0", logs(worker)
        assert "stopping: no new builds" in logs(worker)
    finally:
        drop_database(os.environ["DATABASE_URL"], database)

    # The linux/arm64 image of the same index starts too (under QEMU, so slowly), and the Go
    # extension Crossport reads Dockerfiles with is an aarch64 one that works.
    arm_volume = f"crossport-e2e-{uuid.uuid4().hex[:8]}"
    volumes.append(arm_volume)
    arm_port = free_port()
    arm = docker(
        "run", "-d", "--platform", "linux/arm64", "--network", "host",
        "-v", f"{arm_volume}:/data", reference, "--port", str(arm_port),
    )  # fmt: skip
    containers.append(arm)
    serving(f"http://127.0.0.1:{arm_port}", arm, timeout=300)
    parse = (
        "import dockerfile, platform as p; "
        "print(p.machine(), [c.cmd for c in dockerfile.parse_string('FROM a\\nRUN b')])"
    )
    parsed = docker("exec", arm, "python", "-c", parse)
    assert parsed == "aarch64 ['FROM', 'RUN']", parsed
