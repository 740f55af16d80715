"""End-to-end fixtures: the real stack (scripts/teststack.sh up), a real portal server process
in the current configuration (embedded, or PostgreSQL + Redis with separate build workers),
a real git repository and the real registry on 127.0.0.1:5000.

Without the stack these tests skip locally; with CI=true they fail instead, so CI never passes
without running them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from selfimage import build_crossport_image

from fakes import write_hello
from stack import REGISTRY, commit_all, create_database, drop_database, free_port

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


def _missing_stack() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker CLI"
    if subprocess.run([docker, "info"], capture_output=True, timeout=30).returncode != 0:
        return "Docker engine not running (run scripts/teststack.sh up as root)"
    if (
        subprocess.run([docker, "buildx", "version"], capture_output=True, timeout=30).returncode
        != 0
    ):
        return "docker buildx missing"
    try:
        urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=5).close()
    except OSError as exc:
        return f"registry {REGISTRY} not answering: {exc}"
    if not os.environ.get("PORTAL_BASE_IMAGE_MIRROR"):
        return 'PORTAL_BASE_IMAGE_MIRROR unset (eval "$(scripts/teststack.sh env)")'
    return None


@pytest.fixture(scope="session")
def stack() -> None:
    problem = _missing_stack()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"end-to-end stack unavailable in CI: {problem}")
        pytest.skip(problem)


@dataclass
class Portal:
    port: int
    env: dict[str, str]
    data_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def start_server(self) -> None:
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115
        self.server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(self.port)],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(self.server)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/login/", timeout=2).close()
                return
            except OSError:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((self.data_dir / "server.log").read_text()) from None
                time.sleep(0.2)

    @property
    def scale_out(self) -> bool:
        return "REDIS_URL" in self.env

    def kill_build_runners(self) -> None:
        """SIGKILL whatever runs builds: the worker processes, or the server (embedded)."""
        victims = self.workers if self.scale_out else [self.server]
        for proc in victims:
            proc.kill()
            proc.wait()
        self.workers = []

    def start_build_runners(self) -> None:
        if self.scale_out:
            self.start_worker()
            self.start_worker()
        else:
            self.start_server()

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "buildworker", "--poll", "0.3"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(proc)
        self.processes.append(proc)
        return proc

    def api(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                status = response.status
                kind = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raw, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
        return status, json.loads(raw) if kind.startswith("application/json") else raw.decode()


@contextmanager
def running_portal(
    data_dir: Path, file_root: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Portal]:
    """A portal server (and, with DATABASE_URL, its workers on a database of its own) in the
    current configuration; `extra_env` on top (a test's own PORTAL_OUTBOUND_ALLOW, HOME)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST", "DJANGO_SETTINGS"))
    }
    env.update(
        PORTAL_DATA_DIR=str(data_dir),
        # The test repositories live in pytest's temporary folders.
        PORTAL_GIT_FILE_ROOTS=str(file_root),
        PORTAL_BUILD_LEASE_SECONDS="15",
        PORTAL_CANCEL_GRACE_SECONDS="5",
        PYTHONUNBUFFERED="1",
        **(extra_env or {}),
    )
    database = None
    scale_out = bool(os.environ.get("DATABASE_URL"))
    if scale_out:
        database, env["DATABASE_URL"] = create_database(os.environ["DATABASE_URL"])
        env["PORTAL_CHANNEL_PREFIX"] = f"crossport-e2e-{uuid.uuid4().hex[:8]}"
    instance = Portal(port=port, env=env, data_dir=data_dir)
    try:
        instance.start_server()
        if scale_out:
            instance.start_build_runners()
        yield instance
    finally:
        for proc in instance.processes:
            proc.terminate()
        for proc in instance.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if database:
            drop_database(os.environ["DATABASE_URL"], database)


@pytest.fixture(scope="session")
def portal(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    data_dir = tmp_path_factory.mktemp("portal")
    with running_portal(data_dir, tmp_path_factory.getbasetemp()) as instance:
        yield instance


@dataclass
class Persona:
    username: str
    password: str
    token: str
    team: str


def make_persona(portal: Portal, username: str = "erin", team: str = "e2e") -> Persona:
    """A team admin with a password and an API token, made through the portal's command."""
    password = uuid.uuid4().hex
    out = portal.manage(
        "portal_user",
        username,
        "--team",
        team,
        "--admin",
        "--password-env",
        "E2E_PASSWORD",
        extra_env={"E2E_PASSWORD": password},
    )
    return Persona(username, password, out.strip().splitlines()[-1], team)


@pytest.fixture(scope="session")
def persona(portal: Portal) -> Persona:
    return make_persona(portal)


@pytest.fixture(scope="session")
def hello_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The seed article's Go hello world in a real git repository, reached over file://, with
    a release tag v1.0.0 and a branch named like another release (v9.9.9)."""
    work = tmp_path_factory.mktemp("hello-src")
    write_hello(work)
    git = commit_all(work, "hello")
    subprocess.run([*git, "-C", str(work), "tag", "-a", "-m", "release", "v1.0.0"], check=True)
    subprocess.run([*git, "-C", str(work), "branch", "v9.9.9"], check=True)
    return f"file://{work}"


@pytest.fixture
def slow_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Go program large enough that compiling it for three platforms takes tens of seconds,
    so there is time to cancel or kill mid-build. New for every test: a test that lets one
    finish (the rolling restart) would otherwise leave the next one a cached, instant build."""
    work = tmp_path_factory.mktemp("slow-src")
    salt = uuid.uuid4().int % 100_000
    body = ["package main", 'import "fmt"']
    for i in range(20_000):
        body.append(
            f"func f{i}(x int) int {{ if x > {i} {{ return x*{i}+{salt} }}; return x - {i} }}"
        )
    body.append(
        "func main() { s := 0; "
        + " ".join(f"s += f{i}(s);" for i in range(0, 20_000, 97))
        + " fmt.Println(s) }"
    )
    (work / "main.go").write_text("\n".join(body) + "\n")
    (work / "go.mod").write_text("module example.com/slow\n\ngo 1.19\n")
    commit_all(work, "slow")
    return f"file://{work}"


@pytest.fixture(scope="session")
def broken_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Go program that does not compile: main calls a function that does not exist
    (the compiler says stack.BROKEN_LINE)."""
    work = tmp_path_factory.mktemp("broken-src")
    (work / "go.mod").write_text("module example.com/broken\n\ngo 1.19\n")
    (work / "main.go").write_text("package main\n\nfunc main() {\n\tnosuchfunc()\n}\n")
    commit_all(work, "broken")
    return f"file://{work}"


@pytest.fixture(scope="session")
def portal_with(stack: None) -> Any:
    """`running_portal` and `make_persona`, for a module that needs a portal of its own
    (its own PORTAL_OUTBOUND_ALLOW or HOME): `with portal_with.running(...) as portal:`."""

    class Helpers:
        running = staticmethod(running_portal)
        persona = staticmethod(make_persona)

    return Helpers


@pytest.fixture(scope="session")
def crossport_image(
    portal: Portal, persona: Persona, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Crossport's own image, built from this repository by the portal (once per session).
    Scale-out configuration only: what runs it needs PostgreSQL and Redis, and the embedded
    run would build the same image again."""
    if not portal.scale_out:
        pytest.skip(
            "scale-out configuration only (Crossport's image runs with PostgreSQL and Redis)"
        )
    return build_crossport_image(portal, persona, tmp_path_factory)
