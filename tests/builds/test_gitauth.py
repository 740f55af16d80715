"""What one git fetch may use: its own empty HOME, the project's key as a 0600 file, a
known_hosts written for it (pinned key, or accept-new on a team's first fetch), and a token
only through an askpass script reading 0600 files."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

from builds import gitauth
from builds.gitauth import GitAccess
from builds.models import Build
from builds.worker import work_once
from fakes import FakeBackend
from portal import gitaccess
from portal.models import PinnedHostKey, Project

CANARY = "canary-git-T0ken-91ab"
KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _option(options: list[str], name: str) -> str:
    return next(o.partition("=")[2] for o in options if o.startswith(f"-o{name}="))


def test_ssh_fetch_uses_only_the_projects_key_and_an_empty_home(
    project: Project, tmp_path: Path
) -> None:
    access = gitauth.for_project(project)
    assert CANARY not in repr(access) and "PRIVATE" not in repr(access)
    with gitauth.session("ssh", "git.example.com", 22, access, tmp_path) as session:
        options = session.ssh_options
        assert options[:2] == ["-F", "/dev/null"]
        for fixed in ("IdentitiesOnly=yes", "IdentityAgent=none", "BatchMode=yes"):
            assert f"-o{fixed}" in options
        key = Path(_option(options, "IdentityFile"))
        assert key.read_text() == gitaccess.private_deploy_key(project)
        assert _mode(key) == 0o600 and _mode(session.folder) == 0o700
        assert key.is_relative_to(tmp_path)
        home = Path(session.env["HOME"])
        assert list(home.iterdir()) == [] and home.is_relative_to(tmp_path)
        assert "SSH_AUTH_SOCK" not in session.env
        assert session.config == ["-c", "credential.helper="]
        # The team's first fetch from this host may add the key it sees, and pins it after.
        assert _option(options, "StrictHostKeyChecking") == "accept-new"
        known = Path(_option(options, "UserKnownHostsFile"))
        known.write_text(f"git.example.com ssh-ed25519 {KEY}\n")
        session.succeeded()
    assert not key.exists()  # the fetch's folder goes with it
    pin = PinnedHostKey.objects.get(team=project.team, host="git.example.com", port=22)
    assert (pin.key_type, pin.key) == ("ssh-ed25519", KEY)
    # Later fetches accept only the pinned key (under ssh's name for a port: [host]:port).
    with gitauth.session("ssh", "git.example.com", 22, access, tmp_path) as session:
        assert _option(session.ssh_options, "StrictHostKeyChecking") == "yes"
        known = Path(_option(session.ssh_options, "UserKnownHostsFile"))
        assert known.read_text() == f"git.example.com ssh-ed25519 {KEY}\n"
    assert gitauth.host_alias("127.0.0.1", 2222) == "[127.0.0.1]:2222"


def test_operator_known_hosts_wins_and_nothing_is_pinned(
    project: Project, tmp_path: Path, settings: Any
) -> None:
    settings.PORTAL_GIT_KNOWN_HOSTS = str(tmp_path / "known_hosts")
    with gitauth.session("ssh", "git.example.com", 22, GitAccess(project.team_id), tmp_path) as s:
        assert _option(s.ssh_options, "UserKnownHostsFile") == str(tmp_path / "known_hosts")
        assert _option(s.ssh_options, "StrictHostKeyChecking") == "yes"
        assert _option(s.ssh_options, "IdentityFile") == "none"  # no key: none at all
        s.succeeded()
    assert not PinnedHostKey.objects.exists()


def test_token_reaches_git_only_through_askpass_files(project: Project, tmp_path: Path) -> None:
    gitaccess.set_git_token(project, "ci-bot", CANARY)
    access = gitauth.for_project(project)
    with gitauth.session("https", "git.example.com", 443, access, tmp_path) as session:
        assert CANARY not in repr(session.env) and CANARY not in repr(session.config)
        askpass = session.env["GIT_ASKPASS"]
        assert CANARY not in Path(askpass).read_text()
        assert all(_mode(p) in (0o600, 0o700) for p in session.folder.iterdir())
        env = {"PATH": os.environ["PATH"]}
        ask = [askpass]
        user = subprocess.run([*ask, "Username for 'https://git.example.com': "], env=env,
                              capture_output=True, text=True)  # fmt: skip
        password = subprocess.run([*ask, "Password for 'https://ci-bot@git.example.com': "],
                                  env=env, capture_output=True, text=True)  # fmt: skip
        assert (user.stdout, password.stdout) == ("ci-bot", CANARY)
    # Without a token there is no askpass at all: git cannot ask anyone.
    with gitauth.session("https", "git.example.com", 443, None, tmp_path) as session:
        assert "GIT_ASKPASS" not in session.env


def test_access_hints_say_what_to_do(project: Project) -> None:
    access = gitauth.for_project(project)
    assert "read-only deploy key" in gitauth.access_hint(access, "ssh")
    assert gitaccess.fingerprint(project.deploy_public_key) in gitauth.access_hint(access, "ssh")
    assert "set a git token" in gitauth.access_hint(access, "https")
    assert "register the project" in gitauth.access_hint(None, "ssh")


def test_builds_fetch_with_the_projects_access(queued_build: Build, project: Project) -> None:
    gitaccess.set_git_token(project, "ci-bot", CANARY)
    backend = FakeBackend()
    work_once("w1", backend=backend)
    assert backend.access is not None
    assert backend.access.team_id == project.team_id
    assert backend.access.token == gitaccess.Token("ci-bot", CANARY)
    project.refresh_from_db()
    assert backend.access.ssh_key == gitaccess.private_deploy_key(project)
    queued_build.refresh_from_db()
    assert CANARY not in "".join(queued_build.log_lines.values_list("text", flat=True))
