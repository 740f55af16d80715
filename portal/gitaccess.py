"""Private repositories: a project's SSH deploy key and git token, and the host keys its team
has pinned.

The deploy key is an ed25519 pair made here (`cryptography`, no program, no argv); its private
half is sealed like registry passwords (portal/sealing.py) and leaves the database only into a
0600 file of one fetch (builds/gitauth.py). The token is write-only: pages and answers say
whether one is set, never what it is.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portal.access import is_team_admin
from portal.grammar.login import validate_login
from portal.models import PinnedHostKey, Project
from portal.sealing import seal, unseal

# Where each forge takes a read-only deploy key (one line on the project page).
WHERE_TO_PASTE = (
    "Add it to the repository as a read-only deploy key: GitHub: Settings → Deploy keys; "
    "GitLab: Settings → Repository → Deploy keys; Gitea/Forgejo: Settings → Deploy keys "
    "(leave write access off)."
)


def fingerprint(public_key: str) -> str:
    """SHA256:<base64 without padding> of an OpenSSH public key line, as `ssh-keygen -lf`."""
    parts = public_key.split()
    blob = base64.b64decode(parts[1]) if len(parts) > 1 else b""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _new_pair(comment: str) -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, f"{public.decode()} {comment}"


def _comment(project: Project) -> str:
    # Team slug and project name follow their grammars: safe in a key comment.
    return f"crossport:{project.team.slug}/{project.name}"


def rotate_deploy_key(project: Project) -> str:
    """A new deploy key for the project (the old one stops working); its public line."""
    private, public = _new_pair(_comment(project))
    project.deploy_key_sealed = seal(private)
    project.deploy_public_key = public
    project.save(update_fields=["deploy_key_sealed", "deploy_public_key"])
    return public


def deploy_key(project: Project) -> str:
    """The project's public deploy key, made on first use. Two processes making it at once
    agree: only the first conditional UPDATE lands, and both read what it wrote."""
    if not project.deploy_public_key or not project.deploy_key_sealed:
        private, public = _new_pair(_comment(project))
        Project.objects.filter(pk=project.pk, deploy_public_key="").update(
            deploy_key_sealed=seal(private), deploy_public_key=public
        )
        project.refresh_from_db(fields=["deploy_key_sealed", "deploy_public_key"])
    return project.deploy_public_key


def private_deploy_key(project: Project) -> str:
    """The private half, for one fetch only (raises SealError when the key changed)."""
    deploy_key(project)
    return unseal(project.deploy_key_sealed)


def set_git_token(project: Project, username: object, token: object) -> None:
    """Raises InvalidValue (never naming the values)."""
    name, secret = validate_login(username, token)
    project.git_token_username = name
    project.git_token_sealed = seal(secret)
    project.save(update_fields=["git_token_username", "git_token_sealed"])


def clear_git_token(project: Project) -> None:
    project.git_token_username = ""
    project.git_token_sealed = ""
    project.save(update_fields=["git_token_username", "git_token_sealed"])


@dataclass(frozen=True)
class Token:
    username: str
    token: str


def git_token(project: Project) -> Token | None:
    if not project.git_token_sealed:
        return None
    return Token(project.git_token_username, unseal(project.git_token_sealed))


def one_off_token(username: object, token: object) -> Token:
    """A token sent with a detect request: checked like a saved one, never stored."""
    return Token(*validate_login(username, token))


def host_key_fingerprint(pin: PinnedHostKey) -> str:
    return fingerprint(f"{pin.key_type} {pin.key}")


def page(project: Project, user: Any) -> dict[str, Any]:
    """What the project page shows of its repository access."""
    public = deploy_key(project)
    return {
        "public_key": public,
        "fingerprint": fingerprint(public),
        "where_to_paste": WHERE_TO_PASTE,
        "admin": is_team_admin(user, project.team),
        "host_keys": pinned_keys(project),
    }


def pinned_keys(project: Project) -> list[dict[str, str]]:
    """The team's pinned host keys for the project page: host:port, type and fingerprint."""
    return [
        {
            "host": f"{pin.host}:{pin.port}",
            "type": pin.key_type,
            "fingerprint": host_key_fingerprint(pin),
        }
        for pin in PinnedHostKey.objects.filter(team_id=project.team_id)
    ]
