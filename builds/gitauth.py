"""What one git fetch may use to read a repository, and nothing else.

Every fetch runs in a folder of its own inside the (private, 0700) workspace: an empty HOME, so
the portal user's ~/.ssh, agent and git configuration are never read; for ssh a 0600 copy of
the project's deploy key and a known_hosts file written for this fetch; for https with a token,
an askpass script that prints the user name or the token from 0600 files, so the token is in
no argv, URL or environment. The folder goes when the fetch ends.

Host keys: PORTAL_GIT_KNOWN_HOSTS (the operator's file) wins. Otherwise the first successful
fetch by a team from host:port pins the key ssh saw (portal.models.PinnedHostKey), and later
fetches accept only that key; a refusal names the host and both fingerprints.
"""

from __future__ import annotations

import contextlib
import shlex
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError

from portal import gitaccess
from portal.gitaccess import Token
from portal.grammar import InvalidValue
from portal.models import PinnedHostKey, Project


@dataclass(frozen=True)
class GitAccess:
    """A fetch's credentials: the team (whose pinned host keys apply), the project's deploy key
    and its token, each optional. `repr` never shows the secrets."""

    team_id: int | None = None
    ssh_key: str = field(default="", repr=False)
    key_fingerprint: str = ""
    token: Token | None = field(default=None, repr=False)


def for_project(project: Project) -> GitAccess:
    """The project's deploy key (made on first use) and token. Raises SealError."""
    return GitAccess(
        team_id=project.team_id,
        ssh_key=gitaccess.private_deploy_key(project),
        key_fingerprint=gitaccess.fingerprint(project.deploy_public_key),
        token=gitaccess.git_token(project),
    )


def for_detect(
    team_id: int,
    git_url: str,
    project: Project | None = None,
    username: object = None,
    token: object = None,
) -> GitAccess:
    """A saved project's access (for its own git URL only: its key and token must never be
    offered to a host a member names), or for a new one the team's pinned host keys and a
    one-off token (checked like a saved one, never stored). Raises InvalidValue, SealError."""
    if project is not None:
        if git_url != project.git_url:
            raise InvalidValue(
                "git URL", git_url, "a project's key and token are used only for its own git URL"
            )
        return for_project(project)
    if token or username:
        return GitAccess(team_id=team_id, token=gitaccess.one_off_token(username, token))
    return GitAccess(team_id=team_id)


def access_hint(access: GitAccess | None, scheme: str) -> str:
    """What to do when the repository refused us (appended to the fetch error)."""
    access = access or GitAccess()
    if scheme == "ssh":
        if access.key_fingerprint:
            return (
                f"add this project's deploy key ({access.key_fingerprint}, shown on the project "
                "page) to the repository as a read-only deploy key"
            )
        return (
            "register the project, then add its deploy key (shown on the project page) to the "
            "repository as a read-only deploy key"
        )
    if scheme == "https":
        if access.token is not None:
            return "the project's git token was refused or cannot read it: set a git token again"
        return "for a private repository, set a git token (user name and a read-only token)"
    return ""


@dataclass
class Session:
    """The files and settings of one fetch (see `session`)."""

    folder: Path
    ssh_options: list[str]
    env: dict[str, str]
    config: list[str]
    known_hosts: Path
    pin: tuple[int, str, int] | None = None  # (team, host, port) to pin after success

    def succeeded(self) -> None:
        """Pin the key ssh accepted on a team's first fetch from host:port."""
        if self.pin is None:
            return
        team_id, host, port = self.pin
        for line in self.known_hosts.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and not line.startswith(("#", "@")):
                # A parallel fetch that pinned first wins: its key stands.
                with contextlib.suppress(IntegrityError):
                    PinnedHostKey.objects.get_or_create(
                        team_id=team_id,
                        host=host,
                        port=port,
                        defaults={"key_type": parts[1], "key": parts[2]},
                    )
                return


def host_alias(host: str, port: int) -> str:
    """The name ssh files the key under (as `ssh-keyscan -p` writes it)."""
    return host if port == 22 else f"[{host}]:{port}"


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.touch(mode=mode)
    path.chmod(mode)
    path.write_text(text)
    return path


def ssh_base(folder: Path, key: str) -> list[str]:
    """The fixed ssh options of every fetch: no config file, no agent, no keys but `key`."""
    identity = str(_write(folder / "deploy_key", key)) if key else "none"
    return [
        "-F",
        "/dev/null",
        "-oIdentitiesOnly=yes",
        "-oIdentityAgent=none",
        f"-oIdentityFile={identity}",
        "-oGlobalKnownHostsFile=/dev/null",
        "-oBatchMode=yes",
        "-oCheckHostIP=no",
        "-oUpdateHostKeys=no",
        "-oPasswordAuthentication=no",
        "-oKbdInteractiveAuthentication=no",
    ]


def _known_hosts(folder: Path, team_id: int | None, host: str, port: int) -> tuple[Path, bool]:
    """The known_hosts file for this fetch, and whether ssh may add the first key it sees."""
    if settings.PORTAL_GIT_KNOWN_HOSTS:
        return Path(settings.PORTAL_GIT_KNOWN_HOSTS), False
    pinned = pinned_key(team_id, host, port)
    line = f"{host_alias(host, port)} {pinned.key_type} {pinned.key}\n" if pinned else ""
    return _write(folder / "known_hosts", line), pinned is None


def pinned_key(team_id: int | None, host: str, port: int) -> PinnedHostKey | None:
    if settings.PORTAL_GIT_KNOWN_HOSTS or team_id is None:
        return None
    return PinnedHostKey.objects.filter(team_id=team_id, host=host, port=port).first()


ASKPASS = """#!/bin/sh
case "$1" in
Username*) exec cat -- {username} ;;
*) exec cat -- {token} ;;
esac
"""


@contextmanager
def session(
    scheme: str, host: str, port: int, access: GitAccess | None, where: Path
) -> Iterator[Session]:
    """A private folder for one fetch under `where`, with what git needs to use `access`."""
    access = access or GitAccess()
    with tempfile.TemporaryDirectory(prefix=".git-access-", dir=where) as name:  # 0700
        folder = Path(name)
        home = folder / "home"
        home.mkdir(mode=0o700)
        env = {"HOME": str(home)}
        config = ["-c", "credential.helper="]
        ssh_options: list[str] = []
        known_hosts = folder / "known_hosts"
        pin = None
        if scheme == "ssh":
            known_hosts, first = _known_hosts(folder, access.team_id, host, port)
            ssh_options = [
                *ssh_base(folder, access.ssh_key),
                f"-oUserKnownHostsFile={known_hosts}",
                f"-oStrictHostKeyChecking={'accept-new' if first else 'yes'}",
            ]
            if first and access.team_id is not None:
                pin = (access.team_id, host, port)
        elif scheme == "https" and access.token is not None:
            username = _write(folder / "username", access.token.username)
            token = _write(folder / "token", access.token.token)
            script = ASKPASS.format(
                username=shlex.quote(str(username)), token=shlex.quote(str(token))
            )
            env["GIT_ASKPASS"] = str(_write(folder / "askpass", script, 0o700))
        yield Session(folder, ssh_options, env, config, known_hosts, pin)


def offered_fingerprint(
    host: str, port: int, pinning: list[str], folder: Path, timeout: int = 30
) -> str | None:
    """The fingerprint of the host key the server offers now: ssh records it into an empty
    file (accept-new) during the key exchange; no key is offered, so nothing logs in."""
    from builds.proc import ProcessTimeout, run

    scratch = _write(folder / "offered_key", "")
    cmd = [
        "ssh",
        *ssh_base(folder, ""),
        f"-oUserKnownHostsFile={scratch}",
        "-oStrictHostKeyChecking=accept-new",
        f"-oConnectTimeout={timeout}",
        *pinning,
        "-p",
        str(port),
        "--",
        host,
        "true",
    ]
    try:
        run(cmd, env={"PATH": "/usr/bin:/bin", "HOME": str(folder / "home")}, timeout=timeout)
    except ProcessTimeout:
        return None
    for line in scratch.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            return gitaccess.fingerprint(f"{parts[1]} {parts[2]}")
    return None
