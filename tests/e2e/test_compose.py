"""deploy/compose.yaml for real, with Debian's `docker compose` (v2): Crossport's own image as
the portal and two build workers, PostgreSQL and Redis (the stack's stand-ins through the
mirror setting), brought up until every health check passes. A user is made in the portal
container, a two-platform build runs through the portal's API, the worker running it is
restarted mid-build, the build still ends pushed, and everything is torn down with its volumes.

The one change to the file for this machine (an override file): the test engine's registry and
package servers listen on loopback only, so the portal and the workers share the host's network
and reach PostgreSQL and Redis on ports published to 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selfimage import ENGINE_SETTINGS, PLATFORMS, REPO, docker, get

from stack import (
    free_port,
    platform_manifests,
    registry_index,
    start_build,
    unique_image,
    wait_finished,
)

COMPOSE_FILE = REPO / "deploy" / "compose.yaml"
SECRETS = {
    "postgres_password": secrets.token_hex(16),
    "portal_secret_key": secrets.token_urlsafe(50),
    "portal_encryption_key": secrets.token_urlsafe(32),
}


class Compose:
    def __init__(self, folder: Path, project: str) -> None:
        self.folder, self.project = folder, project

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return docker(
            "compose", "--project-name", self.project, "--project-directory", str(self.folder),
            "-f", str(COMPOSE_FILE), "-f", str(self.folder / "host-network.yaml"), *args,
            timeout=timeout, check=check,
        )  # fmt: skip


def _override(port: int, pg_port: int, redis_port: int, sources: Path) -> dict[str, Any]:
    crossport = {
        "network_mode": "host",
        "environment": {
            "DATABASE_URL": f"postgres://crossport@127.0.0.1:{pg_port}/crossport",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        },
        "volumes": [f"{sources}:{sources}:ro"],
    }
    health = (
        "import urllib.request as r; r.urlopen(r.Request("
        f"'http://127.0.0.1:{port}/healthz', headers={{'Host': 'localhost'}}), timeout=5)"
    )
    return {
        "services": {
            "portal": {
                **crossport,
                "ports": "!reset",
                "command": ["--port", str(port)],
                "healthcheck": {"test": ["CMD", "python", "-c", health]},
            },
            "worker-1": crossport,
            "worker-2": crossport,
            "postgres": {"ports": [f"127.0.0.1:{pg_port}:5432"]},
            "redis": {"ports": [f"127.0.0.1:{redis_port}:6379"]},
        }
    }


@pytest.fixture
def compose(
    crossport_image: str, slow_repo: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Compose, int, str]]:
    folder = tmp_path_factory.mktemp("compose")
    sources = tmp_path_factory.mktemp("compose-sources")
    shutil.copytree(slow_repo.removeprefix("file://"), sources / "slow")
    subprocess.run(["chown", "-R", "65532:65532", str(sources)], check=True)  # the app's user
    port, pg_port, redis_port = free_port(), free_port(), free_port()
    settings = {
        "CROSSPORT_IMAGE": crossport_image,
        "CROSSPORT_MIRROR": os.environ.get("PORTAL_BASE_IMAGE_MIRROR", "localhost:5000/library"),
        "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid),
        "PORTAL_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PORTAL_GIT_FILE_ROOTS": str(sources),
        "PORTAL_LOG_FORMAT": "json",
        "PORTAL_WORKER_DRAIN_SECONDS": "3",
        **{name: os.environ[name] for name in ENGINE_SETTINGS if name in os.environ},
    }
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    # The secrets as the README makes them: one file each, 0444 in a 0700 folder.
    (folder / "secrets").mkdir(mode=0o700)
    for name, value in SECRETS.items():
        (folder / "secrets" / name).write_text(value + "\n")
        (folder / "secrets" / name).chmod(0o444)
    # YAML is a superset of JSON; `!reset` (drop the base file's ports) is YAML's own tag.
    text = json.dumps(_override(port, pg_port, redis_port, sources), indent=1)
    (folder / "host-network.yaml").write_text(text.replace('"!reset"', "!reset []"))
    run = Compose(folder, f"crossport-e2e-{uuid.uuid4().hex[:8]}")
    try:
        yield run, port, f"file://{sources / 'slow'}"
    finally:
        run("down", "--volumes", "--timeout", "10", check=False)


def test_compose_runs_crossport_and_a_worker_restart_loses_no_build(
    compose: tuple[Compose, int, str], portal: Any
) -> None:
    run, port, git_url = compose
    run("up", "--detach", "--wait", "--wait-timeout", "240", timeout=300)
    states = {
        s["Service"]: s["Health"]
        for s in map(json.loads, run("ps", "--format", "json").splitlines())
    }
    assert states == {
        "portal": "healthy",
        "worker-1": "",  # no health check: a worker serves nothing
        "worker-2": "",
        "postgres": "healthy",
        "redis": "healthy",
    }, states
    assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    # The secrets reach the settings from their files (PostgreSQL and the portal agreeing on
    # the password is the third), and no container's configuration holds any of them.
    digest = (
        "import hashlib as h; from django.conf import settings as s; "
        "print(*(h.sha256(v.encode()).hexdigest() for v in (s.SECRET_KEY, s.PORTAL_ENCRYPTION_KEY)))"
    )
    seen = run("exec", "-T", "portal", "python", "manage.py", "shell", "--no-imports", "-c", digest)
    assert seen.split() == [
        hashlib.sha256(SECRETS[name].encode()).hexdigest()
        for name in ("portal_secret_key", "portal_encryption_key")
    ]
    ids = run("ps", "--all", "--quiet").split()
    configured = docker("inspect", *ids)
    assert len(ids) == 5 and not [name for name, v in SECRETS.items() if v in configured]
    password = uuid.uuid4().hex
    made = run(
        "exec", "-T", "-e", f"PW={password}", "portal", "python", "manage.py", "portal_user",
        "rita", "--team", "ops", "--admin", "--password-env", "PW",
    )  # fmt: skip
    token = made.strip().splitlines()[-1]
    inner = type(portal)(port=port, env={}, data_dir=Path("."))
    image = unique_image("compose-slow")
    build = start_build(
        inner,
        token,
        {
            "team": "ops",
            "name": "slow",
            "language": "go",
            "git_url": git_url,
            "image": image,
            "platforms": PLATFORMS,
            "options": {},
        },
    )

    # The worker that claimed it (its JSON log lines carry the build id) is restarted mid-build.
    deadline, runner = time.monotonic() + 120, None
    while runner is None:
        assert time.monotonic() < deadline, run("logs", "--no-color")[-3000:]
        for worker in ("worker-1", "worker-2"):
            if f'"build_id": {build["id"]}' in run("logs", "--no-color", worker):
                runner = worker
        time.sleep(1)
    state = inner.api("GET", f"/api/v1/builds/{build['id']}", token)[1]["state"]
    assert state == "running", state
    run("restart", runner, timeout=120)

    build = wait_finished(inner, token, build["id"], timeout=900)
    logs = run("logs", "--no-color", "worker-1", "worker-2")
    assert build["state"] == "succeeded", f"{build['reason']}\n{logs[-3000:]}"
    digest, index = registry_index(image, "latest")
    assert build["manifest"]["digest"] == digest
    assert sorted(platform_manifests(index)) == PLATFORMS
    assert "stopping: no new builds" in run("logs", "--no-color", runner)
    # One push, one ledger entry: the build did not run twice to a push.
    status, ledger = inner.api("GET", f"/api/v1/manifests?project={build['project']}", token)
    assert status == 200, ledger
    assert [(r["tag"], r["digest"]) for r in ledger["manifests"]] == [(f"{image}:latest", digest)]
