"""Team registry logins: saved sealed, used only through a temporary DOCKER_CONFIG.

The docker CLI (buildx build and imagetools) reads `auths` from $DOCKER_CONFIG/config.json, so
a build or merge gets a private folder (mode 0700, the file 0600) holding the team's login on
top of the operator's own, inside its workspace, which is removed when it ends, fails, is
cancelled or its worker is reaped. The password never appears in an argv, an environment
variable, a log line, a page or an API answer; "test connection" asks the registry for a
manifest through the same kind of folder.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.utils import timezone

from builds import registry
from builds.models import RegistryCredential
from portal import outbound
from portal.grammar import InvalidValue
from portal.grammar.login import validate_login
from portal.grammar.reference import DEFAULT_DOMAIN, canonical_domain, parse_reference
from portal.sealing import SealError

_REGISTRY = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
BUILDX_STATE = ("buildx", "contexts")
UNAUTHORIZED = re.compile(r"unauthorized", re.IGNORECASE)  # registry.imagetools' plain words
NOT_FOUND = re.compile(
    r"not found|manifest unknown|404", re.IGNORECASE
)  # kept when a named builder's config is layered
# registry.py's plain words for an unreachable registry and an untrusted certificate.
UNREACHABLE = re.compile(r"could not be reached", re.IGNORECASE)
TLS = re.compile(r"certificate", re.IGNORECASE)
log = logging.getLogger(__name__)


def validate_registry(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 255:
        raise InvalidValue("registry", value, "expected a host[:port], e.g. registry.example.com")
    host = value.strip().lower()
    if host.startswith(("http://", "https://")) or "/" in host:
        raise InvalidValue("registry", value, "give the host[:port] only, without scheme or path")
    if not _REGISTRY.fullmatch(host):
        raise InvalidValue("registry", value, "not a host[:port]")
    return canonical_domain(host)


def registry_of(image: str) -> str:
    return parse_reference(image).domain


def for_image(team_id: int, image: str) -> RegistryCredential | None:
    return RegistryCredential.objects.filter(team_id=team_id, registry=registry_of(image)).first()


# The docker CLI keeps Docker Hub's login under this key, not "docker.io".
DOCKER_HUB_KEY = "https://index.docker.io/v1/"


# What a build or merge keeps of the operator's docker config, with the type each must have:
# logins (inline, per-registry helpers, a store) and proxies. Not currentContext: its context
# store is not in the folder.
OPERATOR_KEYS = {"auths": dict, "credHelpers": dict, "credsStore": str, "proxies": dict}


def operator_config() -> dict[str, Any]:
    """The portal's own docker config (e.g. logins for the base-image mirror, build proxies)."""
    folder = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    try:
        data = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: data[k] for k, kind in OPERATOR_KEYS.items() if isinstance(data.get(k), kind)}


def write_config(folder: Path, logins: list[RegistryCredential], layer: Path | None = None) -> Path:
    """A DOCKER_CONFIG folder: the operator's logins with these on top; `layer` links a
    builder config's state in."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = operator_config()
    auths = dict(config.get("auths") or {})
    helpers = dict(config.get("credHelpers") or {})
    for login in logins:
        token = base64.b64encode(f"{login.username}:{login.password}".encode()).decode()
        key = DOCKER_HUB_KEY if login.registry == DEFAULT_DOMAIN else login.registry
        auths[key] = {"auth": token}
        # The CLI asks credHelpers[host], else credsStore, before `auths`; an empty helper
        # name sends it to `auths` for this host only, so the operator's store still serves
        # the others (e.g. the base-image mirror).
        helpers[key] = ""
    config["auths"] = auths
    if helpers:
        config["credHelpers"] = helpers
    path = folder / "config.json"
    path.touch(mode=0o600)
    path.write_text(json.dumps(config))
    if layer is not None:
        for name in BUILDX_STATE:
            if (layer / name).exists() and not (folder / name).exists():
                (folder / name).symlink_to(layer / name)
    return folder


def test_connection(login: RegistryCredential) -> tuple[bool, str]:
    """Ask the registry for a manifest with the login (in a throwaway DOCKER_CONFIG), through
    the same buildx CLI the builds use: an answer other than "unauthorized" means the login
    works. (`docker login` would go through the engine, which treats registries on loopback as
    insecure and retries over plain HTTP, turning a refused login into "400 Bad Request".)
    Records and returns the result; a registry the outbound guard refuses is recorded as such
    and raises outbound.Refused (nothing was contacted)."""
    project = login.team.projects.filter(image__startswith=f"{login.registry}/").first()
    repository = project.image if project else f"{login.registry}/crossport/login-check"
    with tempfile.TemporaryDirectory(prefix="crossport-login-") as tmp:
        try:
            config = write_config(Path(tmp) / "docker", [login])
            with registry.using_config(str(config)):
                registry.imagetools("inspect", "--raw", "--", f"{repository}:crossport-login-check")
            ok, message = True, _worked(login)
        except SealError as exc:
            ok, message = False, f"The saved password cannot be read ({exc}): save the login again."
        except outbound.Refused as exc:
            _record(login, False, str(exc))
            raise
        except registry.RegistryError as exc:
            text = str(exc)
            refused = UNAUTHORIZED.search(text)
            ok = not refused and bool(NOT_FOUND.search(text))
            message = _worked(login) if ok else _failed(login, text, bool(refused))
    _record(login, ok, message)
    return ok, message


def _record(login: RegistryCredential, ok: bool, message: str) -> None:
    login.last_tested_at, login.last_test_ok, login.last_test_message = timezone.now(), ok, message
    login.save(update_fields=["last_tested_at", "last_test_ok", "last_test_message"])


def _worked(login: RegistryCredential) -> str:
    return f"Logged in to {login.registry} as {login.username}."


def _failed(login: RegistryCredential, output: str, refused: bool) -> str:
    """One sentence a person can act on; buildx's own words stay in the portal's log."""
    log.info("registry login test for %s failed: %s", login.registry, _clean(output, login))
    if refused:
        return f"{login.registry} refused the user name or password."
    if UNREACHABLE.search(output):
        return f"Could not reach {login.registry}: check the name and port, and that it is up."
    if TLS.search(output):
        return f"{login.registry} answered, but its TLS certificate is not trusted here."
    return f"{login.registry} did not accept the login; its answer is in the portal's log."


def _clean(output: str, login: RegistryCredential) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip() and "WARNING" not in ln]
    return " ".join(lines)[-500:].replace(login.password, "***")


def save_login(
    team: Any, registry: object, username: object, password: object, user: Any
) -> RegistryCredential:
    """Create or replace the team's login for a registry (validated first; nothing saved on
    bad input)."""
    host = validate_registry(registry)
    if outbound.refused_without_lookup(*outbound.registry_address(host)):
        raise outbound.Refused("registry", host)
    name, secret = validate_login(username, password)
    login = RegistryCredential.objects.filter(team=team, registry=host).first()
    login = login or RegistryCredential(team=team, registry=host)
    login.username = name
    login.set_password(secret)
    login.created_by = user if getattr(user, "is_authenticated", False) else None
    login.updated_at = timezone.now()
    login.last_tested_at, login.last_test_ok, login.last_test_message = None, None, ""
    login.save()
    return login


@contextmanager
def using_login(team_id: int, image: object) -> Iterator[None]:
    """Registry calls inside use the team's login for the image's registry, if it has one
    (a private DOCKER_CONFIG that is removed on the way out)."""
    login = None
    if isinstance(image, str):
        try:
            login = for_image(team_id, image)
        except InvalidValue:
            login = None  # the caller reports the bad reference
    if login is None:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="crossport-login-") as tmp:
        config = write_config(Path(tmp) / "docker", [login])
        with registry.using_config(str(config)):
            yield
