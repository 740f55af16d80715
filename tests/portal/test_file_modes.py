"""What the portal writes is its user's alone: folders 0700, files 0600 (the data dir, the
generated secret key, the SQLite database with its -wal/-shm, build workspaces, temporary
DOCKER_CONFIGs, node TLS material). The portal sets umask 077 when its settings load, and gives
the modes explicitly where secrets and their folders are made, so they hold under any umask.

Git checkouts are the exception on purpose: their modes go into the images (COPY keeps them), so
git runs with the usual umask 022 inside the private workspace."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builds import builders, credentials
from builds.dockerhost import TlsMaterial
from builds.gitsource import fetch
from builds.models import Build, BuilderNode
from builds.services import queue_build
from builds.worker import work_once
from fakes import FakeBackend, write_hello
from portal.models import Project

REPO = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that would leave files readable by everyone: explicit modes must not need 077."""
    saved = os.umask(0o022)
    yield
    os.umask(saved)


def _portal_process(data_dir: Path, script: str) -> subprocess.CompletedProcess[str]:
    """A fresh process on the embedded defaults (SQLite, generated key), started with umask
    022 as a shell would."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PORTAL_") and name not in ("DATABASE_URL", "REDIS_URL")
    }
    env |= {"PORTAL_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "portal.settings"}
    setup = "import django, json, os, stat; django.setup(); from django.conf import settings\n"
    return subprocess.run(
        [sys.executable, "-c", setup + script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        umask=0o022,
    )


MODES_WITH_AN_OPEN_DATABASE = """
from django.db import connection
with connection.cursor() as cursor:  # WAL mode: the -wal and -shm files exist while it is open
    cursor.execute("CREATE TABLE t (x)")
    cursor.execute("INSERT INTO t VALUES (1)")
    data = settings.DATA_DIR
    names = ["", "secret.key", "portal.sqlite3", "portal.sqlite3-wal", "portal.sqlite3-shm",
             "static"]
    print(json.dumps({n: oct(stat.S_IMODE((data / n).stat().st_mode)) for n in names}))
"""


def test_a_fresh_data_dir_its_key_and_database_are_private(tmp_path: Path) -> None:
    result = _portal_process(tmp_path / "data", MODES_WITH_AN_OPEN_DATABASE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "": "0o700",
        "secret.key": "0o600",
        "portal.sqlite3": "0o600",
        "portal.sqlite3-wal": "0o600",
        "portal.sqlite3-shm": "0o600",
        "static": "0o700",
    }


def test_an_existing_open_data_dir_is_closed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    result = _portal_process(data, "print(oct(stat.S_IMODE(settings.DATA_DIR.stat().st_mode)))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0o700"


def test_processes_starting_together_agree_on_one_generated_key(tmp_path: Path) -> None:
    """The server and its workers may start at once on a new data dir: one key is written,
    whole, and every process reads that one (never an empty or overwritten file)."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    script = "import hashlib; print(hashlib.sha256(settings.SECRET_KEY.encode()).hexdigest())"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PORTAL_") and name not in ("DATABASE_URL", "REDIS_URL")
    }
    env |= {"PORTAL_DATA_DIR": str(data), "DJANGO_SETTINGS_MODULE": "portal.settings"}
    setup = "import django; django.setup(); from django.conf import settings\n"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", setup + script],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    seen = set()
    for proc in processes:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        seen.add(out.strip())
    key = (data / "secret.key").read_text().strip()
    assert seen == {hashlib.sha256(key.encode()).hexdigest()}
    assert len(key) >= 50 and mode(data / "secret.key") == 0o600
    assert [p.name for p in data.iterdir() if p.name.startswith(".")] == []  # no leftovers


def test_the_portal_process_runs_with_umask_077() -> None:
    current = os.umask(0o077)
    os.umask(current)
    assert current == 0o077  # set when the settings loaded, as in every portal process


@pytest.mark.django_db
def test_a_build_workspace_and_its_secrets_are_private(
    project: Project, alice: Any, local_node: BuilderNode, loose_umask: None, settings: Any
) -> None:
    """Through a whole build (the fake backend looks while it runs): the workspace root and
    workspace, the temporary DOCKER_CONFIG and the node's TLS files, under a loose umask."""
    credentials.save_login(project.team, "localhost:5000", "ci", "s3cret", alice)
    local_node.set_tls(TlsMaterial(ca="ca", cert="cert", key="key"))
    local_node.save()
    seen: dict[str, int] = {}

    class Look(FakeBackend):
        def build(self, specs: Any, *args: Any) -> list[int]:
            spec = specs[0]
            workspace = spec.dockerfile.parent
            config = Path(spec.docker_config)
            assert spec.cert_path is not None
            seen.update(
                {
                    "root": mode(Path(settings.PORTAL_WORKSPACE_DIR)),
                    "workspace": mode(workspace),
                    "docker config": mode(config),
                    "config.json": mode(config / "config.json"),
                    "tls": mode(spec.cert_path),
                    "key.pem": mode(spec.cert_path / "key.pem"),
                }
            )
            return super().build(specs, *args)

    build = queue_build(project, alice)
    work_once("w1", Look())
    build.refresh_from_db()
    assert build.state == Build.State.SUCCEEDED, build.reason
    assert seen == {
        "root": 0o700,
        "workspace": 0o700,
        "docker config": 0o700,
        "config.json": 0o600,
        "tls": 0o700,
        "key.pem": 0o600,
    }


@pytest.mark.django_db
def test_under_the_portals_umask_everything_in_a_workspace_is_private(
    project: Project, alice: Any
) -> None:
    found: dict[str, int] = {}

    class Walk(FakeBackend):
        def build(self, specs: Any, *args: Any) -> list[int]:
            workspace = specs[0].dockerfile.parent
            found.update({str(p.relative_to(workspace)): mode(p) for p in workspace.rglob("*")})
            return super().build(specs, *args)

    queue_build(project, alice)
    work_once("w1", Walk())
    assert "Dockerfile" in found and "src/go.mod" in found
    assert {name for name, m in found.items() if m not in (0o600, 0o700)} == set()


def test_the_builders_docker_config_dir_is_private_even_if_it_was_not(
    tmp_path: Path, settings: Any, loose_umask: None
) -> None:
    settings.DATA_DIR = tmp_path
    (tmp_path / "docker").mkdir(mode=0o755)
    assert mode(builders.config_dir()) == 0o700


def test_git_checkouts_keep_the_modes_images_get(tmp_path: Path, settings: Any) -> None:
    """Under the portal's umask 077 a checkout would turn 0644/0755 into 0600/0700, and COPY
    would put those into the image (unreadable for a non-root runtime user)."""
    settings.PORTAL_GIT_FILE_ROOTS = [str(tmp_path / "repos")]
    repo = tmp_path / "repos" / "hello"
    write_hello(repo)
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    git = ["git", "-c", "user.name=T", "-c", "user.email=t@example.invalid", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    workspace = tmp_path / "workspace"
    workspace.mkdir(mode=0o700)
    fetch(f"file://{repo}", "main", workspace / "src")
    assert mode(workspace / "src" / "go.mod") == 0o644
    assert mode(workspace / "src" / "run.sh") == 0o755
